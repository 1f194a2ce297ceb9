// An example device of the device channel (POST /api) in JavaScript with
// WebCrypto, RSA mode: it opens a session, sends messages, sends the first
// again (answered "duplicate") and closes the session. It runs in a
// browser (index.html) and in Node 20+ (node.mjs), which share WebCrypto,
// fetch and URLSearchParams.
//
// Encryption as the original devices do it: a fresh AES-256 key per
// message, AES-CBC (WebCrypto pads with PKCS#7), the key wrapped with
// RSA-OAEP-SHA256 — the gateway's default padding. WebCrypto makes the
// caller name the OAEP hash; it must match the gateway's `padding`.

const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

// post sends form fields and returns the parsed answer.
async function post(api, fields) {
  const res = await fetch(api, { method: "POST", body: new URLSearchParams(fields) });
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status}: ${text}`);
  }
}

// sealer imports the session's public key (PEM) and returns a function
// that encrypts a text into the envelope the gateway expects.
async function sealer(pem) {
  const der = unb64(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""));
  const pub = await crypto.subtle.importKey("spki", der, { name: "RSA-OAEP", hash: "SHA-256" }, false, ["encrypt"]);
  return async (text) => {
    const aesKey = crypto.getRandomValues(new Uint8Array(32));
    const iv = crypto.getRandomValues(new Uint8Array(16));
    const key = await crypto.subtle.importKey("raw", aesKey, { name: "AES-CBC" }, false, ["encrypt"]);
    const ciphertext = await crypto.subtle.encrypt({ name: "AES-CBC", iv }, key, new TextEncoder().encode(text));
    const encryptedKey = await crypto.subtle.encrypt({ name: "RSA-OAEP" }, pub, aesKey);
    return JSON.stringify({
      encryptedKey: b64(encryptedKey),
      iv: b64(iv),
      ciphertext: b64(ciphertext),
      minute: Math.floor(Date.now() / 60000),
    });
  };
}

// runSession runs one session of n messages and a duplicate; it throws on
// any unexpected answer.
export async function runSession({ api, key, n = 3, log = console.log }) {
  const auth = await post(api, { key, status: "on" });
  if (auth.code !== 0) throw new Error(`auth: ${auth.message} (${auth.code})`);
  log(`session opened for "${auth.name}" (rsa)`);
  const seal = await sealer(auth.message);
  let first;
  for (let i = 0; i <= n; i++) {
    let text = JSON.stringify({ reading: i, at: new Date().toISOString() });
    let want = "delivered";
    if (i === n) [text, want] = [first, "duplicate"];
    if (i === 0) first = text;
    const a = await post(api, { key, message: await seal(text) });
    if (a.message !== want) throw new Error(`message ${i}: ${a.message} (${a.code}), want ${want}`);
    log(`message ${i}: ${a.message}`);
  }
  const bye = await post(api, { key, status: "off" });
  if (bye.message !== "deleted") throw new Error(`logout: ${bye.message} (${bye.code})`);
  log("session closed");
}
