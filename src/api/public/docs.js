// A self-contained reader for /openapi.json (no CDN is reachable where this runs): lists
// every operation and sends a call with the key typed above. Values are set as text only.
(function () {
  'use strict';
  var TOKEN = 'shaodian.docs.token';
  var doc = null;

  function el(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function resolve(s) {
    var guard = 0;
    while (s && s.$ref && guard++ < 20) s = doc.components.schemas[s.$ref.split('/').pop()];
    return s || {};
  }

  function example(s, depth) {
    s = resolve(s);
    depth = depth || 0;
    if (depth > 6) return null;
    if (s.example !== undefined) return s.example;
    if (s.default !== undefined) return s.default;
    if (s.enum) return s.enum[0];
    if (s.const !== undefined) return s.const;
    if (s.anyOf || s.oneOf) return example((s.anyOf || s.oneOf)[0], depth + 1);
    var type = Array.isArray(s.type)
      ? s.type.filter(function (t) {
          return t !== 'null';
        })[0]
      : s.type;
    switch (type) {
      case 'object': {
        var o = {};
        var req = s.required || [];
        for (var k in s.properties || {}) if (req.indexOf(k) >= 0) o[k] = example(s.properties[k], depth + 1);
        return o;
      }
      case 'array':
        return [example(s.items || {}, depth + 1)];
      case 'integer':
      case 'number':
        return s.minimum != null ? Math.max(s.minimum, 1) : 1;
      case 'boolean':
        return false;
      case 'string':
        if (s.format === 'date-time') return new Date().toISOString();
        if (s.format === 'date') return '1990-01-01';
        return 'string';
      default:
        return null;
    }
  }

  function render() {
    document.getElementById('title').textContent =
      doc.info.title + ' ' + doc.info.version + ' (OpenAPI ' + doc.openapi + ')';
    document.getElementById('description').textContent = doc.info.description || '';
    var byTag = {};
    Object.keys(doc.paths).forEach(function (p) {
      Object.keys(doc.paths[p]).forEach(function (m) {
        var op = doc.paths[p][m];
        var tag = (op.tags && op.tags[0]) || 'other';
        (byTag[tag] = byTag[tag] || []).push({ path: p, method: m, op: op });
      });
    });
    var main = document.getElementById('ops');
    var toc = document.getElementById('toc');
    Object.keys(byTag).forEach(function (tag) {
      toc.appendChild(el('a', { href: '#tag-' + tag, text: tag }));
      main.appendChild(el('h2', { id: 'tag-' + tag, text: tag }));
      byTag[tag].forEach(function (o) {
        main.appendChild(operation(o.path, o.method, o.op));
      });
    });
  }

  function operation(path, method, op) {
    var details = el('details', { cls: 'op', id: op.operationId || '' });
    details.appendChild(
      el(
        'summary',
        null,
        el('span', { cls: 'method ' + method, text: method }),
        el('span', { cls: 'path', text: path }),
        el('span', { text: op.summary || '' }),
      ),
    );
    var body = el('div', { cls: 'body' });
    if (op.description) body.appendChild(el('p', { text: op.description }));
    var inputs = {};
    var params = op.parameters || [];
    if (params.length) {
      var grid = el('div', { cls: 'params' });
      params.forEach(function (p) {
        var input = el('input', { placeholder: (p.schema && (p.schema.example || p.schema.type)) || '' });
        inputs[p.in + ':' + p.name] = input;
        grid.appendChild(el('label', { text: p.name + ' (' + p.in + (p.required ? ', required' : '') + ')' }));
        grid.appendChild(input);
      });
      body.appendChild(grid);
    }
    var textarea = null;
    var rb = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
    if (rb) {
      textarea = el('textarea');
      textarea.value = JSON.stringify(example(rb.schema), null, 2);
      body.appendChild(el('p', { text: 'Request body (application/json):' }));
      body.appendChild(textarea);
    }
    var responses = el('p', { cls: 'responses' });
    Object.keys(op.responses || {}).forEach(function (code) {
      responses.appendChild(el('code', { title: op.responses[code].description, text: code }));
    });
    body.appendChild(responses);
    var out = el('pre', { hidden: 'hidden' });
    var send = el('button', { type: 'button', text: 'Send' });
    send.addEventListener('click', function () {
      var url = path;
      var query = new URLSearchParams();
      params.forEach(function (p) {
        var v = inputs[p.in + ':' + p.name].value;
        if (!v) return;
        if (p.in === 'path') url = url.replace('{' + p.name + '}', encodeURIComponent(v));
        else if (p.in === 'query') query.set(p.name, v);
      });
      if (String(query)) url += '?' + query;
      var headers = { Accept: 'application/json' };
      var token = document.getElementById('token').value.trim();
      if (token) headers.Authorization = 'Bearer ' + token;
      var init = { method: method.toUpperCase(), headers: headers };
      if (textarea) {
        headers['Content-Type'] = 'application/json';
        init.body = textarea.value;
      }
      out.hidden = false;
      out.textContent = '…';
      fetch(url, init)
        .then(function (r) {
          return r.text().then(function (text) {
            var shown = text;
            try {
              shown = JSON.stringify(JSON.parse(text), null, 2);
            } catch (e) {
              /* not JSON */
            }
            var hs = [];
            r.headers.forEach(function (v, k) {
              if (/^(content-type|location|retry-after|www-authenticate)$/i.test(k)) hs.push(k + ': ' + v);
            });
            out.textContent = r.status + ' ' + r.statusText + '\n' + hs.join('\n') + '\n\n' + shown;
          });
        })
        .catch(function (e) {
          out.textContent = String(e);
        });
    });
    body.appendChild(send);
    body.appendChild(out);
    details.appendChild(body);
    return details;
  }

  var tokenInput = document.getElementById('token');
  tokenInput.value = sessionStorage.getItem(TOKEN) || '';
  tokenInput.addEventListener('change', function () {
    sessionStorage.setItem(TOKEN, tokenInput.value.trim());
  });
  fetch('/openapi.json')
    .then(function (r) {
      return r.json();
    })
    .then(function (d) {
      doc = d;
      render();
    })
    .catch(function (e) {
      document.getElementById('ops').textContent = 'Could not load /openapi.json: ' + e;
    });
})();
