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
let nextCursor = "";

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
  if (auth && resp.status === 401 && !retried && (await renew())) {
    return call(method, path, body, auth, true);
  }
  throw err;
}

// renew gets a new access token through the refresh cookie.
async function renew() {
  try {
    const pair = await call("POST", "/portal/auth/refresh", undefined, false);
    accessToken = pair.access_token;
    return true;
  } catch {
    accessToken = null;
    return false;
  }
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

function signedOut() {
  accessToken = null;
  profile = null;
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
      await listMessages(true);
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

async function listMessages(fresh) {
  showView("messages-view");
  const tbody = $("messages").tBodies[0];
  if (fresh) {
    tbody.replaceChildren();
    nextCursor = "";
  }
  const params = new URLSearchParams({ limit: String(pageSize) });
  const status = $("filter-status").value;
  const q = $("filter-q").value.trim();
  if (status) params.set("status", status);
  if (q) params.set("q", q);
  if (nextCursor) params.set("cursor", nextCursor);
  const page = await call("GET", "/portal/messages?" + params);
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
  nextCursor = page.next_cursor || "";
  $("more").hidden = !nextCursor;
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

onSubmit("filter-form", () => listMessages(true));

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
  try {
    await listMessages(false);
  } catch (err) {
    showError(err);
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
