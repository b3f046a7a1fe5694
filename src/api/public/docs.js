// The API's reference: Swagger UI (served by the API from node_modules, no CDN) on /openapi.json.
// Authorization is kept in memory only (persistAuthorization: false): a reload forgets the key.
(function () {
  'use strict';
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    docExpansion: 'list',
    validatorUrl: null,
    onComplete: function () {
      document.body.setAttribute('data-loaded', String(Date.now()));
    },
  });
})();
