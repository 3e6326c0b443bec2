// GET /docs: Swagger UI (swagger-ui-dist, Apache-2.0) reading /openapi.json. Its bundle and
// stylesheet are imported as text modules (wrangler.toml [[rules]]) and served from here:
// no CDN, the page works offline and on a private network.
import swaggerCss from "swagger-ui-dist/swagger-ui.css";
import swaggerBundle from "swagger-ui-dist/swagger-ui-bundle.js";

export const referencePage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mensageiro API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="reference"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// Kept out of the HTML so a strict Content-Security-Policy (script-src 'self') still allows it.
export const referenceInit = `window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#reference", deepLinking: true, tryItOutEnabled: false });\n`;

export const referenceAssets = { css: swaggerCss, bundle: swaggerBundle };
