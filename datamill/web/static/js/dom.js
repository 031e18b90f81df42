// Building DOM nodes. Text always goes in as text (never as HTML), so whatever a batch's
// metadata or a provider's error message holds, it cannot inject markup into the page.

/** h("a", {href: "/x", class: "c"}, "text", child) -> an element. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace ``node``'s children; returns the node. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

/** The page's path parameters, rendered by the server into <body data-params>. */
export function pageParams() {
  return JSON.parse(document.body.dataset.params || "{}");
}

/** A <dl> entry. */
export function stat(label, value, note) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value, note ? [" ", h("small", {}, note)] : []));
}
