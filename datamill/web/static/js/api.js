// Every request the pages make goes through here: to this server's origin only, with the
// credentials the page was given (the session cookie set by signing in, or a bearer token
// handed over through useCredentials). A change sent with the cookie carries the page's CSRF
// token (a meta tag the server rendered); without it the server refuses the change.

const TOKEN_KEY = "datamill.token";
let bearer = sessionStorage.getItem(TOKEN_KEY);

/** Send ``token`` as `Authorization: Bearer` from now on (null: stop sending one). */
export function useCredentials(token) {
  bearer = token;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer that was not 2xx, with OpenAI's error fields when the server sent them. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? null;
    this.param = error?.param ?? null;
  }
}

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";

function headers(extra = {}, method = "GET") {
  const base = bearer ? { Authorization: `Bearer ${bearer}` } : {};
  if (CSRF && method !== "GET") base["X-CSRF-Token"] = CSRF;
  return { ...base, ...extra };
}

async function send(path, init = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    ...init,
    headers: headers(init.headers, init.method || "GET"),
  });
  if (response.status === 401 && !bearer) {
    // The session ended (key revoked or expired): sign in again, then come back here, to
    // the same view (its filters in the query, the generation job in the hash).
    const { pathname, search, hash } = window.location;
    window.location.assign(`/login?next=${encodeURIComponent(pathname + search + hash)}`);
  }
  if (!response.ok) {
    let error = null;
    try {
      error = (await response.json()).error;
    } catch {
      // not JSON: the status says it all
    }
    throw new ApiError(response.status, error);
  }
  return response;
}

export async function getJSON(path, { signal } = {}) {
  return (await send(path, { signal })).json();
}

export async function postJSON(path, body = {}) {
  const response = await send(path, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  });
  return response.json();
}

export async function patchJSON(path, body) {
  const response = await send(path, {
    method: "PATCH",
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  });
  return response.json();
}

export async function postForm(path, form) {
  return (await send(path, { method: "POST", body: form })).json();
}

/** The text of a (possibly long) answer, cut at ``maxBytes``; returns {text, truncated}. */
export async function getText(path, { maxBytes = 2 * 1024 * 1024 } = {}) {
  const response = await send(path);
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size >= maxBytes) {
      truncated = true;
      await reader.cancel();
      break;
    }
  }
  const text = new TextDecoder().decode(await new Blob(chunks).arrayBuffer());
  return { text, truncated };
}

/** True when the server has no such route (an older server, or a feature turned off). */
export function isMissingRoute(error) {
  return error instanceof ApiError && error.status === 404 && error.code === null;
}
