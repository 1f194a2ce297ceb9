// Starts Swagger UI on the /docs page of caddy-msgbroker. A separate file
// rather than an inline script, so the page's Content-Security-Policy can
// allow scripts from the gateway itself only.
window.addEventListener("load", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // No call to the public validator at validator.swagger.io: the gateway
    // must work offline.
    validatorUrl: null,
  });
});
