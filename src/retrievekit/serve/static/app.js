/* retrievekit web UI: shared API client (auth, errors) and the search page. Plain JS, no build step, no CDN. */
"use strict";

(function () {
  const KEY_STORAGE = "retrievekit-api-key";
  // The UI lives at <root>/ui/; the API at <root>/api/, so the UI keeps working behind a path prefix.
  const API_BASE = new URL("../api/", document.baseURI);

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function apiUrl(path) {
    return new URL(path, API_BASE).toString();
  }

  function getKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch (_) {
      return "";
    }
  }

  function setKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) { /* storage disabled: the key lives as long as the page */ }
    updateKeyButton();
  }

  // -- the API-key prompt: one dialog shared by every request that got a 401 ----------------------------------
  let keyDialog = null;
  let pendingPrompt = null;

  function buildKeyDialog() {
    const dialog = el("dialog", { id: "key-dialog", "aria-labelledby": "key-title" });
    const form = el("form", { class: "key-form", method: "dialog" });
    form.append(
      el("h2", { id: "key-title" }, "API key needed"),
      el("p", { id: "key-message" }),
      el("label", { for: "api-key" }, "API key"),
      el("input", { type: "password", id: "api-key", name: "api-key", autocomplete: "off", required: "" }),
    );
    const actions = el("div", { class: "actions" });
    const cancel = el("button", { type: "button", id: "key-cancel" }, "Cancel");
    const ok = el("button", { type: "submit", class: "primary", id: "key-submit" }, "Use key");
    actions.append(cancel, ok);
    form.append(actions);
    dialog.append(form);
    document.body.append(dialog);
    cancel.addEventListener("click", () => dialog.close("cancel"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = form.querySelector("#api-key").value.trim();
      if (value) dialog.close("ok");
    });
    return dialog;
  }

  function askForKey(message) {
    if (pendingPrompt) return pendingPrompt;
    keyDialog = keyDialog || buildKeyDialog();
    const input = keyDialog.querySelector("#api-key");
    keyDialog.querySelector("#key-message").textContent = message;
    input.value = "";
    pendingPrompt = new Promise((resolve) => {
      keyDialog.addEventListener("close", () => {
        pendingPrompt = null;
        resolve(keyDialog.returnValue === "ok" ? input.value.trim() : null);
      }, { once: true });
      keyDialog.returnValue = "";
      keyDialog.showModal();
      input.focus();
    });
    return pendingPrompt;
  }

  function updateKeyButton() {
    const button = document.getElementById("forget-key");
    if (button) button.hidden = !getKey();
  }

  function installKeyButton() {
    const header = document.querySelector("header.site");
    if (!header || document.getElementById("forget-key")) return;
    const button = el("button", { type: "button", id: "forget-key", class: "link" }, "Forget API key");
    button.addEventListener("click", () => {
      setKey("");
      location.reload();
    });
    header.append(button);
    updateKeyButton();
  }

  // -- requests -------------------------------------------------------------------------------------------------
  async function errorFrom(response) {
    let code = "http_" + response.status;
    let message = response.statusText || "request failed";
    try {
      const body = await response.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      } else if (body && body.detail) {
        message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      }
    } catch (_) { /* not JSON: keep the status text */ }
    const retry = response.headers.get("Retry-After");
    if (response.status === 429 && retry) message += ` (retry in ${retry} s)`;
    return new ApiError(response.status, code, message);
  }

  /** One API call; answers 401 by asking for the key and retrying. Resolves to {data, ms} (ms: last round trip). */
  async function request(path, options = {}) {
    for (;;) {
      const key = getKey();
      const headers = { Accept: options.blob ? "*/*" : "application/json" };
      if (key) headers.Authorization = "Bearer " + key;
      const init = { method: options.method || "GET", headers };
      if (options.form !== undefined) {
        init.body = options.form; // FormData: the browser sets the multipart Content-Type with its boundary
      } else if (options.body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(options.body);
      }
      const started = performance.now();
      let response;
      try {
        response = await fetch(apiUrl(path), init);
      } catch (err) {
        throw new ApiError(0, "network_error", "Cannot reach the server (" + err.message + ").");
      }
      if (response.status === 401) {
        if (getKey() !== key) continue; // another request got a new key meanwhile
        const rejected = await errorFrom(response);
        const fresh = await askForKey(key ? "The server rejected this API key; enter a valid one."
          : "This server needs an API key (retrievekit serve --api-key).");
        if (fresh === null) throw rejected;
        setKey(fresh);
        continue;
      }
      if (!response.ok) throw await errorFrom(response);
      const data = options.blob ? await response.blob() : await response.json();
      return { data, ms: performance.now() - started };
    }
  }

  async function apiFetch(path, options) {
    return (await request(path, options)).data;
  }

  /** An API URL the server gave as "/api/..." (a hit's thumbnail_url), resolved like every other API path. */
  function serverApiUrl(url) {
    return apiUrl(String(url).replace(/^\/api\//, ""));
  }

  /** Show the image at an API URL in ``img``: directly, or, when an API key is in use (an <img> cannot send it),
   * fetched with the key and shown from a blob URL. */
  function loadApiImage(img, url) {
    const path = String(url).replace(/^\/api\//, "");
    if (!getKey()) {
      img.src = apiUrl(path);
      return;
    }
    request(path, { blob: true }).then(({ data }) => {
      const objectUrl = URL.createObjectURL(data);
      img.addEventListener("load", () => URL.revokeObjectURL(objectUrl), { once: true });
      img.src = objectUrl;
    }).catch(() => img.classList.add("broken"));
  }

  // -- DOM helpers ----------------------------------------------------------------------------------------------
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function showError(target, err) {
    target.textContent = "";
    if (!err) return;
    target.append(document.createTextNode(err.message || String(err)));
    if (err.code) {
      const status = err.status ? `, HTTP ${err.status}` : "";
      target.append(" ", el("span", { class: "code" }, `(${err.code}${status})`));
    }
    if (err.status === 401) {
      const retry = el("button", { type: "button", class: "link" }, "Enter an API key");
      retry.addEventListener("click", () => location.reload()); // the reload asks for the key again
      target.append(" ", retry);
    }
  }

  const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

  function decodeEntities(text) {
    return text.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (whole, name) => {
      if (name[0] === "#") {
        const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
        return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
      }
      return ENTITIES[name.toLowerCase()];
    });
  }

  /** Render a server snippet (HTML-escaped text with <mark>…</mark>) without innerHTML: only <mark> survives. */
  function renderSnippet(target, html) {
    target.textContent = "";
    let into = target;
    for (const part of String(html || "").split(/(<mark>|<\/mark>)/i)) {
      if (/^<mark>$/i.test(part)) {
        if (into === target) {
          into = el("mark");
          target.append(into);
        }
      } else if (/^<\/mark>$/i.test(part)) {
        into = target;
      } else if (part) {
        into.append(document.createTextNode(decodeEntities(part)));
      }
    }
  }

  function formatValue(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  async function showCollection() {
    const target = document.getElementById("collection-info");
    const info = await apiFetch("info");
    if (target && info && info.collection) {
      const c = info.collection;
      const name = String(c.path || "").split(/[\\/]/).filter(Boolean).pop() || "collection";
      const count = typeof c.documents === "number" ? ` · ${c.documents.toLocaleString()} documents` : "";
      target.textContent = name + count;
    }
    return info;
  }

  // -- code documents (path, start_line, end_line in their metadata: `retrievekit index --code`) ----------------
  // Language names of the code indexer -> highlight.js names (the vendored "common" build, vendor/highlight/).
  const HLJS_NAMES = { tsx: "typescript", c_sharp: "csharp", text: "plaintext", toml: "ini", shell: "bash" };
  const CODE_LINES = 12; // lines of a code hit shown in the result list

  function isCode(doc) {
    const m = (doc && doc.metadata) || {};
    return typeof m.path === "string" && Number.isInteger(m.start_line) && Number.isInteger(m.end_line);
  }

  function codeLocation(metadata) {
    const { path, start_line: start, end_line: end } = metadata;
    return start === end ? `${path}:${start}` : `${path}:${start}-${end}`;
  }

  // -- paged documents (a PDF's pages, a deck's slides: `page`/`page_end` in a passage's metadata) -------------
  function pageLocation(metadata) {
    const m = metadata || {};
    if (typeof m.path !== "string" || !Number.isInteger(m.page)) return null;
    const last = Number.isInteger(m.page_end) ? m.page_end : m.page;
    return last === m.page ? `${m.path} p. ${m.page}` : `${m.path} pp. ${m.page}-${last}`;
  }

  // The page reference, as a link to the source file opened at that page when the server shares the files
  // (info.document_files: `retrievekit serve --document-root`), else as text.
  function pageLink(docId, text, page, filesServed) {
    if (!filesServed) return el("span", { class: "location" }, text);
    const path = "documents/" + docId.split("/").map(encodeURIComponent).join("/") + "/file";
    return el("a", { class: "location", href: apiUrl(path) + (page ? "#page=" + page : ""), target: "_blank",
      rel: "noopener" }, text);
  }

  function hljsLanguage(name) {
    const hljs = window.hljs;
    const wanted = HLJS_NAMES[name] || name;
    return hljs && typeof wanted === "string" && hljs.getLanguage(wanted) ? wanted : null;
  }

  /** The source span of a code document (text after the repeated header of a split symbol's later parts) with
   * the file line number of its first line. */
  function codeSpan(doc) {
    const m = doc.metadata || {};
    const skip = Number.isInteger(m.header_chars) && m.header_chars > 0 ? m.header_chars : 0;
    const lines = String(doc.text || "").slice(skip).split("\n");
    if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop(); // a final line break opens no line
    return { lines, first: m.start_line };
  }

  /** A <pre> of numbered, syntax-highlighted lines. The text goes in as textContent and highlight.js builds the
   * markup from it (escaped), so document text never becomes HTML. ``marked``: lower-cased words to outline. */
  function codeBlock(lines, first, language, marked) {
    const pre = el("pre", { class: "code-block" });
    const gutter = el("span", { class: "line-numbers", "aria-hidden": "true" },
      lines.map((_, i) => first + i).join("\n"));
    const lang = hljsLanguage(language);
    const code = el("code", { class: lang ? `hljs language-${lang}` : "hljs nohighlight" });
    code.textContent = lines.join("\n");
    if (lang) {
      try {
        window.hljs.highlightElement(code);
      } catch (_) { /* leave it plain */ }
    }
    if (marked && marked.size) markWords(code, marked);
    pre.append(gutter, code);
    if (lang) pre.dataset.language = lang;
    return pre;
  }

  /** Wrap the words of ``root``'s text that are in ``words`` (lower-cased) in <mark>, text node by text node. */
  function markWords(root, words) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    for (const node of nodes) {
      const parts = node.nodeValue.split(/([\p{L}\p{N}_]+)/u);
      if (!parts.some((p) => words.has(p.toLowerCase()))) continue;
      const frag = document.createDocumentFragment();
      for (const part of parts) {
        if (part && words.has(part.toLowerCase())) frag.append(el("mark", {}, part));
        else if (part) frag.append(document.createTextNode(part));
      }
      node.replaceWith(frag);
    }
  }

  /** The words the server marked in a snippet (its <mark> parts), lower-cased. */
  function markedWords(snippetHtml) {
    const words = new Set();
    for (const m of String(snippetHtml || "").matchAll(/<mark>(.*?)<\/mark>/gi)) {
      for (const w of decodeEntities(m[1]).split(/[^\p{L}\p{N}_]+/u)) if (w) words.add(w.toLowerCase());
    }
    return words;
  }

  /** The first line of the ``count`` consecutive lines holding the most marked words, placed so that their first
   * match has up to two lines of context above (from the top when nothing is marked). */
  function bestLines(lines, words, count) {
    if (lines.length <= count || !words.size) return 0;
    const hits = lines.map((line) => line.split(/[^\p{L}\p{N}_]+/u).filter((w) => words.has(w.toLowerCase())).length);
    let sum = hits.slice(0, count).reduce((a, b) => a + b, 0);
    let best = 0;
    let bestSum = sum;
    for (let start = 1; start + count <= lines.length; start++) {
      sum += hits[start + count - 1] - hits[start - 1];
      if (sum > bestSum) {
        best = start;
        bestSum = sum;
      }
    }
    let first = best;
    while (first < best + count && !hits[first]) first++;
    // moving the window down to the first match keeps every match it held
    return first < best + count ? Math.min(Math.max(best, first - 2), lines.length - count) : best;
  }

  window.retrievekit = {
    ApiError, apiFetch, apiUrl, request, getKey, setKey, el, showError, renderSnippet, decodeEntities,
    formatValue, showCollection, installKeyButton, isCode, codeLocation, pageLocation, pageLink, codeSpan, codeBlock,
    loadApiImage,
    serverApiUrl,
  };

  // -- search page --------------------------------------------------------------------------------------------
  const OPERATORS = [
    ["eq", "="], ["ne", "≠"], ["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"],
    ["in", "in"], ["nin", "not in"], ["exists", "exists"], ["glob", "glob"],
  ];

  class InputError extends Error {
    constructor(message, focus) {
      super(message);
      this.code = "bad_input";
      this.focus = focus;
    }
  }

  /** A typed filter value: numbers, true/false and null as JSON; quoted text stays text. */
  function parseValue(raw) {
    const text = raw.trim();
    const quoted = /^"(.*)"$/s.exec(text) || /^'(.*)'$/s.exec(text);
    if (quoted) return quoted[1];
    if (text === "true" || text === "false") return text === "true";
    if (text === "null") return null;
    if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
    return text;
  }

  function unparseValue(value) {
    if (typeof value === "string") {
      return parseValue(value) === value && !value.includes(",") ? value : JSON.stringify(value);
    }
    return JSON.stringify(value);
  }

  function initSearchPage() {
    const form = document.getElementById("search-form");
    const query = document.getElementById("query");
    const modeOptions = document.getElementById("mode-options");
    const rerankGroup = document.getElementById("rerank-group");
    const rerank = document.getElementById("rerank");
    const pageSize = document.getElementById("page-size");
    const filterRows = document.getElementById("filter-rows");
    const errorBox = document.getElementById("error");
    const status = document.getElementById("status");
    const resultsSection = document.getElementById("results");
    const list = document.getElementById("result-list");
    const pager = document.getElementById("pager");
    const prev = document.getElementById("prev-page");
    const next = document.getElementById("next-page");
    const range = document.getElementById("page-range");
    const fieldList = el("datalist", { id: "metadata-fields" });
    document.body.append(fieldList);
    let documentFiles = false; // the server shares the indexed files: page references link to them
    const imagePanel = document.getElementById("image-query");
    const dropZone = document.getElementById("drop-zone");
    const imageInput = document.getElementById("image-file");
    const imagePreview = document.getElementById("image-preview");
    const imageName = document.getElementById("image-name");
    const imageClear = document.getElementById("image-clear");
    const weight = document.getElementById("image-weight");
    const weightValue = document.getElementById("weight-value");
    let queryImage = null; // the File searched for (image collections)

    let offset = 0;
    let searchSeq = 0;
    let filterCount = 0;

    function currentMode() {
      const checked = modeOptions.querySelector("input[name=mode]:checked");
      return checked ? checked.value : "bm25";
    }

    function setModes(modes, wanted) {
      modeOptions.textContent = "";
      const chosen = modes.includes(wanted) ? wanted : modes[0];
      for (const mode of modes) {
        const input = el("input", { type: "radio", name: "mode", id: "mode-" + mode, value: mode });
        input.checked = mode === chosen;
        modeOptions.append(input, el("label", { for: "mode-" + mode }, mode));
      }
    }

    function addFilterRow(field, op, value) {
      const n = ++filterCount;
      const row = el("div", { class: "filter-row" });
      const fieldInput = el("input", {
        type: "text", name: "field", list: "metadata-fields", placeholder: "field", id: `filter-field-${n}`,
      });
      const opSelect = el("select", { name: "op", id: `filter-op-${n}` });
      for (const [name, label] of OPERATORS) opSelect.append(el("option", { value: name }, label));
      const valueInput = el("input", {
        type: "text", name: "value", placeholder: "value", id: `filter-value-${n}`, "aria-describedby": "filter-help",
      });
      const remove = el("button", { type: "button", class: "remove-filter", "aria-label": `Remove filter ${n}` }, "✕");
      fieldInput.value = field || "";
      opSelect.value = op || "eq";
      valueInput.value = value || "";
      const syncPlaceholder = () => {
        valueInput.placeholder = opSelect.value === "exists" ? "true or false"
          : opSelect.value === "in" || opSelect.value === "nin" ? "a, b, c"
            : opSelect.value === "glob" ? "src/**/*.py" : "value";
      };
      opSelect.addEventListener("change", syncPlaceholder);
      syncPlaceholder();
      remove.addEventListener("click", () => {
        row.remove();
        document.getElementById("add-filter").focus();
      });
      row.append(
        el("label", { for: fieldInput.id, class: "visually-hidden" }, `Filter ${n} field`), fieldInput,
        el("label", { for: opSelect.id, class: "visually-hidden" }, `Filter ${n} operator`), opSelect,
        el("label", { for: valueInput.id, class: "visually-hidden" }, `Filter ${n} value`), valueInput,
        remove,
      );
      filterRows.append(row);
      return fieldInput;
    }

    /** {filter} from the filter fields, or null after showing why they are invalid (the field at fault focused). */
    function checkedFilter() {
      try {
        return { filter: buildFilter() };
      } catch (err) {
        showError(errorBox, err);
        if (err.focus) err.focus.focus();
        return null;
      }
    }

    /** The rows as the contract's filter object ({field: {op: value}}), or null when there are none. */
    function buildFilter() {
      const filter = {};
      for (const row of filterRows.querySelectorAll(".filter-row")) {
        const fieldInput = row.querySelector("[name=field]");
        const valueInput = row.querySelector("[name=value]");
        const field = fieldInput.value.trim();
        const op = row.querySelector("[name=op]").value;
        const raw = valueInput.value.trim();
        if (!field && !raw) continue;
        if (!field) throw new InputError("A filter has a value but no field name.", fieldInput);
        let value;
        if (op === "exists") {
          value = raw === "" ? true : parseValue(raw);
          if (typeof value !== "boolean") throw new InputError(`“exists” on ${field} takes true or false.`, valueInput);
        } else if (op === "in" || op === "nin") {
          value = raw.split(",").map((s) => s.trim()).filter(Boolean).map(parseValue);
          if (!value.length) throw new InputError(`The filter on ${field} needs at least one value.`, valueInput);
        } else if (op === "glob") {
          if (raw === "") throw new InputError(`The glob on ${field} needs a pattern.`, valueInput);
          value = raw; // a path pattern is always text
        } else {
          if (raw === "") throw new InputError(`The filter on ${field} needs a value.`, valueInput);
          value = parseValue(raw);
        }
        filter[field] = Object.assign(filter[field] || {}, { [op]: value });
      }
      return Object.keys(filter).length ? filter : null;
    }

    function restoreFilter(filter) {
      for (const [field, condition] of Object.entries(filter || {})) {
        const ops = condition && typeof condition === "object" && !Array.isArray(condition) ? condition
          : { eq: condition };
        for (const [rawOp, value] of Object.entries(ops)) {
          const op = rawOp.replace(/^\$/, "");
          const text = Array.isArray(value) ? value.map(unparseValue).join(", ") : unparseValue(value);
          addFilterRow(field, op, text);
        }
      }
    }

    function saveState(state) {
      const params = new URLSearchParams();
      params.set("q", state.query);
      params.set("mode", state.mode);
      if (state.k !== 10) params.set("k", String(state.k));
      if (state.offset) params.set("offset", String(state.offset));
      if (state.filter) params.set("filter", JSON.stringify(state.filter));
      if (state.rerank) params.set("rerank", state.rerank);
      history.replaceState(null, "", "?" + params.toString());
    }

    const CODE_CHIPS = ["language", "kind"];

    /** An image hit: its thumbnail (opens the document), caption, score. */
    function imageHit(hit) {
      const item = el("li", { "data-id": hit.id, class: "image-hit" });
      const figure = el("figure");
      const open = el("button", { type: "button", class: "thumb", "aria-label": `Open ${hit.title || hit.id}` });
      const img = el("img", { alt: hit.title || hit.id, loading: "lazy", decoding: "async" });
      loadApiImage(img, hit.thumbnail_url);
      open.append(img);
      open.addEventListener("click", () => openDocument(hit.id, open));
      const caption = el("figcaption");
      const title = el("button", { type: "button", class: "hit-title" }, hit.title || hit.id);
      title.addEventListener("click", () => openDocument(hit.id, title));
      const text = el("p", { class: "caption" });
      renderSnippet(text, hit.snippet);
      const meta = el("div", { class: "hit-meta" });
      meta.append(el("span", { class: "rank", "aria-label": `rank ${hit.rank}` }, "#" + hit.rank),
        el("span", { class: "score" }, "score " + Number(hit.score).toFixed(4)));
      caption.append(title, text, meta);
      figure.append(open, caption);
      item.append(figure);
      return item;
    }

    function renderHits(data, roundTripMs) {
      list.textContent = "";
      const hits = data.hits || [];
      const codeHits = [];
      const grid = hits.some((hit) => hit.thumbnail_url);
      list.classList.toggle("image-grid", grid);
      for (const hit of hits) {
        if (grid) {
          list.append(imageHit(hit));
          continue;
        }
        const code = isCode(hit);
        const item = el("li", { "data-id": hit.id });
        const body = el("div");
        const title = el("button", { type: "button", class: "hit-title" }, hit.title || hit.id);
        title.addEventListener("click", () => openDocument(hit.id, title));
        const meta = el("div", { class: "hit-meta" });
        const pages = code ? null : pageLocation(hit.metadata);
        if (code) meta.append(el("span", { class: "location" }, codeLocation(hit.metadata)));
        if (pages) meta.append(pageLink(hit.id, pages, hit.metadata.page, documentFiles));
        meta.append(el("span", { class: "score" }, "score " + Number(hit.score).toFixed(4)));
        if (!code) meta.append(el("span", { class: "hit-id" }, hit.id));
        const chips = code ? CODE_CHIPS.filter((n) => n in hit.metadata).map((n) => [n, hit.metadata[n]])
          : Object.entries(hit.metadata || {}).slice(0, 6);
        for (const [name, value] of chips) {
          meta.append(el("span", { class: "chip", "data-field": name }, `${name}: ${formatValue(value)}`));
        }
        const snippet = el("p", { class: "snippet" });
        renderSnippet(snippet, hit.snippet);
        body.append(title, meta, snippet);
        if (code) {
          item.classList.add("code-hit");
          codeHits.push({ hit, body, snippet });
        }
        item.append(el("span", { class: "rank", "aria-label": `rank ${hit.rank}` }, hit.rank), body);
        list.append(item);
      }
      showCode(codeHits, searchSeq);
      status.textContent = "";
      const first = hits.length ? hits[0].rank : data.offset + 1;
      const summary = hits.length ? `Results ${first}–${first + hits.length - 1}` : "No results";
      const took = el("span", { id: "took" }, `${Number(data.took_ms).toFixed(1)} ms`);
      const trip = el("span", { id: "round-trip" }, `${roundTripMs.toFixed(0)} ms`);
      status.append(`${summary} · mode ${data.mode} · server `, took, " · round-trip ", trip);
      if (!hits.length) list.append(el("li", { class: "empty" }, data.offset ? "No more results." : "Nothing matched."));
      pager.hidden = !hits.length && !data.offset;
      prev.disabled = data.offset <= 0;
      next.disabled = hits.length < data.k || data.offset + data.k > 10000;
      range.textContent = hits.length ? `${first}–${first + hits.length - 1}` : "";
    }

    /** Replace each code hit's snippet by its best lines, syntax-highlighted (the document is fetched: a snippet
     * has lost the code's lines). A failed fetch keeps the snippet. */
    function showCode(codeHits, seq) {
      for (const { hit, body, snippet } of codeHits) {
        apiFetch("documents/" + encodeURIComponent(hit.id)).then((doc) => {
          if (seq !== searchSeq || !isCode(doc)) return;
          const { lines, first } = codeSpan(doc);
          const words = markedWords(hit.snippet);
          const start = bestLines(lines, words, CODE_LINES);
          const block = codeBlock(lines.slice(start, start + CODE_LINES), first + start, doc.metadata.language, words);
          if (start + CODE_LINES < lines.length || start > 0) block.classList.add("excerpt");
          snippet.replaceWith(block);
        }).catch(() => { /* the plain snippet stays */ });
      }
    }

    async function search(newOffset) {
      showError(errorBox, null);
      const text = query.value.trim();
      if (queryImage) {
        searchImage(text, newOffset);
        return;
      }
      if (!text) {
        query.focus();
        return;
      }
      const checked = checkedFilter();
      if (!checked) return;
      const filter = checked.filter;
      const state = {
        query: text, mode: currentMode(), k: Number(pageSize.value), offset: Math.max(0, newOffset), filter,
        rerank: rerankGroup.hidden ? "" : rerank.value,
      };
      const body = { query: state.query, k: state.k, offset: state.offset, mode: state.mode, filter, highlight: true };
      if (state.rerank) body.rerank = state.rerank;
      const seq = ++searchSeq;
      resultsSection.setAttribute("aria-busy", "true");
      status.textContent = "Searching…";
      try {
        const { data, ms } = await request("search", { method: "POST", body });
        if (seq !== searchSeq) return; // a newer search answered first
        offset = state.offset;
        saveState(state);
        renderHits(data, ms);
      } catch (err) {
        if (seq !== searchSeq) return;
        status.textContent = "";
        showError(errorBox, err);
      } finally {
        if (seq === searchSeq) resultsSection.removeAttribute("aria-busy");
      }
    }

    /** POST the query image (and the words, composed with the weight) to /api/search/image. */
    async function searchImage(text, newOffset) {
      const checked = checkedFilter();
      if (!checked) return;
      const filter = checked.filter;
      const k = Number(pageSize.value);
      const start = Math.max(0, newOffset);
      const form = new FormData();
      form.append("image", queryImage, queryImage.name || "query-image");
      if (text) {
        form.append("text", text);
        form.append("weight", weight.value);
      }
      form.append("k", String(k));
      form.append("offset", String(start));
      if (filter) form.append("filter", JSON.stringify(filter));
      const seq = ++searchSeq;
      resultsSection.setAttribute("aria-busy", "true");
      status.textContent = "Searching by image…";
      try {
        const { data, ms } = await request("search/image", { method: "POST", form });
        if (seq !== searchSeq) return;
        offset = start;
        renderHits(data, ms);
      } catch (err) {
        if (seq !== searchSeq) return;
        status.textContent = "";
        showError(errorBox, err);
      } finally {
        if (seq === searchSeq) resultsSection.removeAttribute("aria-busy");
      }
    }

    let previewUrl = null;

    function setQueryImage(file) {
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = null;
      queryImage = file || null;
      imagePreview.hidden = !queryImage;
      imageClear.hidden = !queryImage;
      // words are optional with an image: the image alone is a query
      query.required = !queryImage;
      imageName.textContent = queryImage ? `Searching for ${queryImage.name || "the dropped image"}` : "";
      if (queryImage) {
        previewUrl = URL.createObjectURL(queryImage);
        imagePreview.src = previewUrl;
        imagePreview.alt = "query image " + (queryImage.name || "");
        search(0);
      } else {
        imagePreview.removeAttribute("src");
        imageInput.value = "";
      }
    }

    function initImageSearch() {
      imagePanel.hidden = false;
      document.body.dataset.imageSearch = "true";
      imageInput.addEventListener("change", () => setQueryImage(imageInput.files[0]));
      imageClear.addEventListener("click", () => {
        setQueryImage(null);
        imageInput.focus();
      });
      weight.addEventListener("input", () => {
        weightValue.textContent = Number(weight.value).toFixed(2);
      });
      weight.addEventListener("change", () => {
        if (queryImage && query.value.trim()) search(0);
      });
      for (const type of ["dragenter", "dragover"]) {
        dropZone.addEventListener(type, (event) => {
          event.preventDefault();
          dropZone.classList.add("dragging");
        });
      }
      dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
      dropZone.addEventListener("drop", (event) => {
        event.preventDefault();
        dropZone.classList.remove("dragging");
        const file = [...(event.dataTransfer ? event.dataTransfer.files : [])][0];
        if (file) setQueryImage(file);
      });
    }

    // -- document view -------------------------------------------------------------------------------------------
    const dialog = document.getElementById("doc-dialog");
    const docTitle = document.getElementById("doc-title");
    const docId = document.getElementById("doc-id");
    const docText = document.getElementById("doc-text");
    const docError = document.getElementById("doc-error");
    const docMeta = document.querySelector("#doc-metadata tbody");
    const docMetaWrap = document.getElementById("doc-metadata-wrap");
    let docSeq = 0;

    async function openDocument(id, opener) {
      const seq = ++docSeq;
      docTitle.textContent = "Loading…";
      docId.textContent = id;
      docText.textContent = "";
      docMeta.textContent = "";
      docMetaWrap.hidden = true;
      showError(docError, null);
      if (!dialog.open) dialog.showModal();
      document.getElementById("doc-close").focus();
      dialog.opener = opener;
      try {
        const doc = await apiFetch("documents/" + encodeURIComponent(id));
        if (seq !== docSeq) return;
        docTitle.textContent = doc.title || doc.id;
        docId.textContent = isCode(doc) ? codeLocation(doc.metadata) : doc.id;
        if (isCode(doc)) {
          const { lines, first } = codeSpan(doc);
          docText.append(codeBlock(lines, first, doc.metadata.language, null));
        } else {
          docText.textContent = doc.text || "";
        }
        if (typeof (doc.metadata || {}).thumbnail === "string") {
          const img = el("img", { class: "doc-image", alt: doc.title || doc.id });
          loadApiImage(img, "/api/documents/" + encodeURIComponent(doc.id) + "/thumbnail");
          docText.prepend(img);
        }
        const entries = Object.entries(doc.metadata || {}).filter(([name]) => name !== "thumbnail");
        for (const [name, value] of entries) {
          const row = el("tr");
          row.append(el("th", { scope: "row" }, name), el("td", {}, formatValue(value)));
          docMeta.append(row);
        }
        docMetaWrap.hidden = !entries.length;
      } catch (err) {
        if (seq !== docSeq) return;
        docTitle.textContent = "Document unavailable";
        showError(docError, err);
      }
    }

    document.getElementById("doc-close").addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close(); // a click on the backdrop
    });
    dialog.addEventListener("close", () => {
      if (dialog.opener && document.contains(dialog.opener)) dialog.opener.focus();
    });

    // -- wiring ------------------------------------------------------------------------------------------------------
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      search(0);
    });
    modeOptions.addEventListener("change", () => {
      if (query.value.trim() && !queryImage) search(0);
    });
    pageSize.addEventListener("change", () => {
      if (query.value.trim() || queryImage) search(0);
    });
    rerank.addEventListener("change", () => {
      if (query.value.trim()) search(0);
    });
    prev.addEventListener("click", () => search(offset - Number(pageSize.value)));
    next.addEventListener("click", () => search(offset + Number(pageSize.value)));
    document.getElementById("add-filter").addEventListener("click", () => addFilterRow().focus());

    const params = new URLSearchParams(location.search);
    if (params.get("q")) query.value = params.get("q");
    if (params.get("k") && [...pageSize.options].some((o) => o.value === params.get("k"))) {
      pageSize.value = params.get("k");
    }
    if (params.get("filter")) {
      try {
        restoreFilter(JSON.parse(params.get("filter")));
      } catch (_) { /* a hand-edited URL: start without filters */ }
    }
    const wantedMode = params.get("mode") || "bm25";
    const wantedRerank = params.get("rerank") || "";

    installKeyButton();
    showCollection().then((info) => {
      setModes(info.modes && info.modes.length ? info.modes : ["bm25"], wantedMode);
      for (const name of info.rerankers || []) rerank.append(el("option", { value: name }, name));
      rerankGroup.hidden = !(info.rerankers || []).length;
      if (wantedRerank && (info.rerankers || []).includes(wantedRerank)) rerank.value = wantedRerank;
      fieldList.textContent = "";
      for (const name of info.metadata_fields || []) fieldList.append(el("option", { value: name }));
      if (info.image_search) initImageSearch();
      documentFiles = Boolean(info.document_files);
      document.body.dataset.ready = "true";
      if (query.value.trim()) search(Number(params.get("offset")) || 0);
    }).catch((err) => {
      showError(errorBox, err);
      document.body.dataset.ready = "true";
    });
  }

  if (document.getElementById("search-form")) initSearchPage();
})();
