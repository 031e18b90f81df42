// The sign-in page is a plain form: it works without this module. Nothing to do here but
// keep the page's module convention (every page loads js/pages/<name>.js).
export {};
