// Start Swagger UI on this server's OpenAPI description. A file of its own (no inline script)
// so that the page's Content-Security-Policy holds; the assets are vendored, nothing external.
const root = document.getElementById("swagger-ui");
window.ui = window.SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  domNode: root,
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // the default validator is a remote service
  presets: [window.SwaggerUIBundle.presets.apis],
});
