// Starts Swagger UI on /docs (a file, not an inline script: the pages' Content-Security-Policy runs our files only).
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({ url: root.dataset.spec, dom_id: "#swagger-ui", validatorUrl: null, deepLinking: true,
                              displayOperationId: true, persistAuthorization: true });
