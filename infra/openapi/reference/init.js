// Swagger UI over the contract the local gateway serves. No validator badge: it would send the
// document to an outside service.
window.ui = SwaggerUIBundle({
  url: '/openapi.yaml',
  dom_id: '#swagger-ui',
  validatorUrl: null,
  deepLinking: true,
  defaultModelsExpandDepth: 0,
});

for (const span of document.querySelectorAll('.origin')) span.textContent = window.location.origin;
