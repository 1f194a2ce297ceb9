// The msgbroker web portal: a page over the portal API (/portal/...).
//
// The access token lives in this script's memory only; the refresh token
// is the HttpOnly cookie the API sets with "use_cookie": true, which no
// script can read. Requests the cookie authenticates carry the
// X-Requested-With header the API demands against cross-site requests.
// Everything the API returns is put into the page as text (textContent),
// never as markup, so a message id or error cannot run script.
"use strict";

const csrfHeader = { "X-Requested-With": "msgbroker-portal" };
const pageSize = 50;

let accessToken = null;
let profile = null;
// The list's next page: its cursor and the filter it was made for (a
// cursor is only valid with its own filter).
let nextPage = null;
let renewing = null;

const $ = (id) => document.getElementById(id);

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// call sends one request to the portal API and returns its JSON (or null
// for 204). With auth, an expired access token is renewed once through
// the refresh cookie and the request repeated.
async function call(method, path, body, auth = true, retried = false) {
  const headers = { ...csrfHeader };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && accessToken) headers.Authorization = "Bearer " + accessToken;
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    throw new APIError(resp.status, "bad_answer", `the server answered ${resp.status} without JSON`);
  }
  if (resp.ok) return data;
  const err = new APIError(resp.status, data?.error?.code ?? "error", data?.error?.message ?? `HTTP ${resp.status}`);
  if (auth && resp.status === 401 && !retried && (await renewAfter(headers.Authorization))) {
    return call(method, path, body, auth, true);
  }
  throw err;
}

// renew gets a new access token through the refresh cookie. A refresh
// token is spent by its use, and the API takes a second use for theft and
// ends the session; so requests that need a new token at once share one
// refresh, and tabs of the same browser take turns (Web Locks), each one
// using the cookie the previous one left.
function renew() {
  if (!renewing) {
    const refresh = async () => {
      try {
        const pair = await call("POST", "/portal/auth/refresh", undefined, false);
        accessToken = pair.access_token;
        return true;
      } catch {
        accessToken = null;
        return false;
      }
    };
    const turn = navigator.locks ? navigator.locks.request("msgbroker-portal-refresh", refresh) : refresh();
    renewing = turn.finally(() => {
      renewing = null;
    });
  }
  return renewing;
}

// renewAfter renews the access token unless another request already did
// while this one was answered with 401.
async function renewAfter(usedAuthorization) {
  if (accessToken && "Bearer " + accessToken !== usedAuthorization) return true;
  return renew();
}

function showError(err) {
  const box = $("error");
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = err.message || String(err);
  box.hidden = false;
}

function showView(id) {
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== id;
  }
  $("nav").hidden = !profile;
}

async function signedIn() {
  profile = await call("GET", "/portal/profile");
  $("who").textContent = `${profile.email} (${profile.role})`;
  await route();
}

// signedOut forgets the session and everything it showed: on a shared
// computer the next person must not find the last one's messages in the
// page.
function signedOut() {
  accessToken = null;
  profile = null;
  nextPage = null;
  $("messages").tBodies[0].replaceChildren();
  for (const id of ["m-fields", "p-fields"]) $(id).replaceChildren();
  for (const id of ["m-id", "m-body", "who"]) $(id).textContent = "";
  $("m-body").hidden = true;
  $("filter-q").value = "";
  $("filter-status").value = "";
  $("more").hidden = true;
  showView("login-view");
}

async function route() {
  if (!profile) return signedOut();
  showError(null);
  const hash = location.hash || "#/messages";
  try {
    if (hash.startsWith("#/messages/")) {
      await showMessage(decodeURIComponent(hash.slice("#/messages/".length)));
    } else if (hash === "#/profile") {
      showProfile();
    } else {
      await listMessages(false);
    }
  } catch (err) {
    if (err.status === 401) return signedOut();
    showError(err);
  }
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  row.appendChild(td);
  return td;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// listMessages shows the first page of the list under the filter in the
// form, or (more) appends the next page of the list shown.
async function listMessages(more) {
  showView("messages-view");
  const tbody = $("messages").tBodies[0];
  let params;
  if (more && nextPage) {
    params = new URLSearchParams(nextPage.filter);
    params.set("cursor", nextPage.cursor);
  } else {
    params = new URLSearchParams({ limit: String(pageSize) });
    const status = $("filter-status").value;
    const q = $("filter-q").value.trim();
    if (status) params.set("status", status);
    if (q) params.set("q", q);
  }
  const filter = new URLSearchParams(params);
  filter.delete("cursor");
  const page = await call("GET", "/portal/messages?" + params);
  if (!more) tbody.replaceChildren();
  for (const m of page.items) {
    const row = document.createElement("tr");
    cell(row, when(m.queued_at));
    const link = document.createElement("a");
    link.href = "#/messages/" + encodeURIComponent(m.message_id);
    link.textContent = m.message_id;
    cell(row, "").appendChild(link);
    cell(row, m.client_id);
    cell(row, m.sender);
    cell(row, m.status);
    cell(row, String(m.attempts));
    tbody.appendChild(row);
  }
  nextPage = page.next_cursor ? { cursor: page.next_cursor, filter: filter.toString() } : null;
  $("more").hidden = !nextPage;
  $("messages-empty").hidden = tbody.rows.length > 0;
}

function fields(dl, pairs) {
  dl.replaceChildren();
  for (const [name, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value ?? "";
    dl.append(dt, dd);
  }
}

async function showMessage(id) {
  showView("message-view");
  $("m-id").textContent = id;
  $("m-body").hidden = true;
  $("m-body").textContent = "";
  const path = "/portal/messages/" + encodeURIComponent(id);
  const m = await call("GET", path);
  fields($("m-fields"), [
    ["Client", m.client_id],
    ["Sender", m.sender],
    ["Status", m.status],
    ["Attempts", String(m.attempts)],
    ["Last error", m.last_error],
    ["Queued", when(m.queued_at)],
    ["Updated", when(m.updated_at)],
    ["Delivered", when(m.delivered_at)],
    ["Failed", when(m.failed_at)],
    ["Metadata", m.metadata == null ? "" : JSON.stringify(m.metadata)],
  ]);
  const button = $("m-decrypt");
  button.hidden = profile.role !== "admin";
  button.onclick = async () => {
    try {
      const full = await call("GET", path + "?decrypt=true");
      $("m-body").textContent = full.body ?? "";
      $("m-body").hidden = false;
    } catch (err) {
      showError(err);
    }
  };
}

function showProfile() {
  showView("profile-view");
  $("pw-done").hidden = true;
  fields($("p-fields"), [
    ["Email", profile.email],
    ["Role", profile.role],
    ["Client", profile.client_id],
    ["Account created", when(profile.created_at)],
    ["Last login", when(profile.last_login_at)],
  ]);
}

function onSubmit(id, handler) {
  $(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(null);
    try {
      await handler();
    } catch (err) {
      showError(err);
    }
  });
}

onSubmit("login-form", async () => {
  const pair = await call("POST", "/portal/auth/login", {
    email: $("login-email").value,
    password: $("login-password").value,
    use_cookie: true,
  }, false);
  $("login-password").value = "";
  accessToken = pair.access_token;
  await signedIn();
});

onSubmit("filter-form", () => listMessages(false));

onSubmit("password-form", async () => {
  const pair = await call("PUT", "/portal/profile/password", {
    current_password: $("pw-current").value,
    new_password: $("pw-new").value,
    use_cookie: true,
  });
  accessToken = pair.access_token;
  $("pw-current").value = "";
  $("pw-new").value = "";
  $("pw-done").hidden = false;
});

$("more").addEventListener("click", async () => {
  const button = $("more");
  if (button.disabled) return;
  button.disabled = true; // a double click must not append a page twice
  try {
    await listMessages(true);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await call("POST", "/portal/auth/logout", undefined, false);
  } catch (err) {
    showError(err);
  }
  location.hash = "";
  signedOut();
});

window.addEventListener("hashchange", route);

// A page load with a live refresh cookie goes straight in.
(async () => {
  if (await renew()) {
    try {
      await signedIn();
      return;
    } catch (err) {
      showError(err);
    }
  }
  signedOut();
})();
