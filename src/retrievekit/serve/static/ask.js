/* retrievekit web UI: the ask page (POST /api/ask). Answers come from a model and contexts from documents: both are
   untrusted text, so everything is put in the page with textContent and DOM nodes, never innerHTML. */
"use strict";

(function () {
  const rk = window.retrievekit;
  const { el } = rk;
  // A bracket group of source numbers, as the server reads them: [1], [1, 2], [1-3], [Source 2], ...
  const GROUP = /\[\s*(?:(?:sources?|docs?|documents?|passages?|refs?)\s*#?\s*)?(\d{1,6}(?:\s*(?:-|–|—|,|;|and|&)\s*\d{1,6})*)\s*\]/gi;
  const FLAG_LABELS = [
    [/^injection:/, "possible prompt injection"],
    [/^(poison|duplicate)/, "possible poisoning"],
  ];

  const form = document.getElementById("ask-form");
  const question = document.getElementById("question");
  const mode = document.getElementById("mode");
  const selector = document.getElementById("selector");
  const compress = document.getElementById("compress");
  const depth = document.getElementById("depth");
  const dropFlagged = document.getElementById("drop-flagged");
  const note = document.getElementById("generator-note");
  const errorBox = document.getElementById("error");
  const status = document.getElementById("status");
  const answerSection = document.getElementById("answer-section");
  const answerBox = document.getElementById("answer");
  const contextsSection = document.getElementById("contexts-section");
  const contextList = document.getElementById("context-list");
  let askSeq = 0;
  let generatorPending = false; // configured but not loaded yet: the first question takes longer

  function setOptions(select, values, wanted) {
    for (const value of values) select.append(el("option", { value }, value));
    if (wanted !== null && values.includes(wanted)) select.value = wanted;
  }

  function describeGenerator(generator) {
    const name = [generator.backend, generator.model].filter(Boolean).join(" · ");
    return name || generator.spec || "configured";
  }

  function showGenerator(generator) {
    note.hidden = false;
    note.textContent = "";
    note.classList.toggle("warning", !generator);
    if (!generator) {
      note.append("No generator configured — showing contexts. Start the server with ",
        el("code", {}, "--generator local"), " or ", el("code", {}, "--generator openai:MODEL@URL"),
        " to get answers.");
      return;
    }
    generatorPending = generator.loaded === false;
    note.append("Answers by ", el("strong", { id: "generator-name" }, describeGenerator(generator)));
    if (generator.error) note.append(" — unavailable: " + generator.error);
    else if (generatorPending) note.append(" (loads on the first question)");
  }

  // -- answer ---------------------------------------------------------------------------------------------------
  function highlightContext(number, focus) {
    for (const item of contextList.querySelectorAll("li.highlight")) item.classList.remove("highlight");
    const target = document.getElementById("context-" + number);
    if (!target) return;
    target.classList.add("highlight");
    target.scrollIntoView({ block: "center", behavior: "smooth" });
    if (focus) target.focus({ preventScroll: true });
  }

  function citationLink(number) {
    const link = el("a", { href: "#context-" + number, class: "cite", "data-cite": String(number),
      "aria-label": `source ${number}` }, String(number));
    link.addEventListener("click", (event) => {
      event.preventDefault();
      highlightContext(number, true);
    });
    return link;
  }

  /** The answer text with each cited number of a bracket group as a link to its context. */
  function renderAnswerText(target, text, cited) {
    let last = 0;
    for (const match of text.matchAll(GROUP)) {
      target.append(text.slice(last, match.index));
      const group = el("span", { class: "cite-group" });
      let pos = 0;
      for (const item of match[0].matchAll(/\d{1,6}/g)) {
        group.append(match[0].slice(pos, item.index));
        const number = Number(item[0]);
        group.append(cited.has(number) ? citationLink(number) : item[0]);
        pos = item.index + item[0].length;
      }
      group.append(match[0].slice(pos));
      target.append(group);
      last = match.index + match[0].length;
    }
    target.append(text.slice(last));
  }

  function renderAnswer(data) {
    answerBox.textContent = "";
    answerBox.removeAttribute("data-unknown");
    if (!data.generator) {
      answerSection.hidden = true;
      return;
    }
    answerSection.hidden = false;
    const cited = new Set((data.citations || []).map((c) => c.number));
    if (data.unknown) {
      answerBox.dataset.unknown = "true";
      const box = el("p", { class: "unknown-answer", id: "unknown-answer" });
      box.append(el("strong", {}, "I don’t know"), " — the sources do not contain the answer.");
      answerBox.append(box);
      if (data.answer && data.answer.trim().replace(/[.\s]+$/, "") !== "I don't know") {
        const said = el("p", { class: "answer-text" });
        renderAnswerText(said, data.answer, cited);
        answerBox.append(said);
      }
      if (data.unsupported_answer) {
        const withheld = el("p", { class: "unsupported-answer", id: "unsupported-answer" },
          "Withheld because it cites no source: ");
        withheld.append(el("q", {}, data.unsupported_answer));
        answerBox.append(withheld);
      }
      return;
    }
    const text = el("p", { class: "answer-text", id: "answer-text" });
    renderAnswerText(text, data.answer || "", cited);
    answerBox.append(text);
    if (data.citations && data.citations.length) {
      const sources = el("p", { class: "cited-sources" }, "Cited: ");
      data.citations.forEach((c, i) => {
        if (i) sources.append(", ");
        const link = citationLink(c.number);
        // a file's lines or pages ("paper.pdf p. 12") when the document carries them
        link.textContent = `[${c.number}] ${c.location ? c.location.ref : c.doc_id}`;
        sources.append(link);
      });
      answerBox.append(sources);
    }
  }

  // -- contexts -------------------------------------------------------------------------------------------------
  function flagWarning(flags) {
    const kinds = [...new Set(flags.map((f) => (FLAG_LABELS.find(([re]) => re.test(f)) || [null, "flagged"])[1]))];
    const warning = el("p", { class: "flag-warning", role: "note" });
    warning.append(el("strong", {}, "⚠ Warning: " + kinds.join(", ")), " — ");
    warning.append("this text was passed to the generator as data only and may try to steer it (",
      el("span", { class: "flags" }, flags.join(", ")), ").");
    return warning;
  }

  function renderContexts(data) {
    contextList.textContent = "";
    const cited = new Set((data.citations || []).map((c) => c.number));
    for (const c of data.contexts || []) {
      const item = el("li", { id: "context-" + c.number, class: "context", tabindex: "-1",
        "data-number": String(c.number), "data-id": c.id });
      if (c.flags && c.flags.length) item.classList.add("flagged");
      const body = el("div");
      const meta = el("div", { class: "hit-meta" });
      // the document's file: a passage of a long whole document (rag.focus) is no stored document of its own
      if (c.location && c.location.page) meta.append(rk.pageLink(c.doc_id, c.location.ref, c.location.page, documentFiles));
      else if (c.location) meta.append(el("span", { class: "location" }, c.location.ref));
      meta.append(
        el("span", { class: "doc-id" }, c.doc_id),
        el("span", { class: "offsets", title: "character offsets in the document" }, `chars ${c.start}–${c.end}`),
        el("span", { class: "score" }, "score " + Number(c.score).toFixed(4)),
      );
      if (c.id !== c.doc_id) meta.append(el("span", { class: "passage-id" }, "passage " + c.id));
      if (c.spans && c.spans.length) meta.append(el("span", { class: "chip" }, `compressed: ${c.spans.length} sentence${c.spans.length === 1 ? "" : "s"}`));
      if (cited.has(c.number)) meta.append(el("span", { class: "chip cited" }, "cited"));
      body.append(el("div", { class: "context-title" }, c.title || c.doc_id), meta);
      if (c.flags && c.flags.length) body.append(flagWarning(c.flags));
      body.append(el("p", { class: "context-text" }, c.text));
      item.append(el("span", { class: "rank", "aria-label": `context ${c.number}` }, `[${c.number}]`), body);
      contextList.append(item);
    }
    if (!(data.contexts || []).length) contextList.append(el("li", { class: "empty" }, "No passage matched."));
    contextsSection.hidden = false;
  }

  function renderStatus(data, roundTripMs) {
    status.textContent = "";
    const n = (data.contexts || []).length;
    status.append(`${n} context${n === 1 ? "" : "s"} · `,
      el("span", { id: "context-tokens" }, String(data.context_tokens)), " context tokens · server ",
      el("span", { id: "took" }, `${Number(data.took_ms).toFixed(1)} ms`), " · round-trip ",
      el("span", { id: "round-trip" }, `${roundTripMs.toFixed(0)} ms`));
    if (data.retrieval_cached) status.append(" · retrieval cached");
  }

  // -- asking ---------------------------------------------------------------------------------------------------
  function saveState(body) {
    const params = new URLSearchParams();
    params.set("q", body.question);
    for (const name of ["mode", "selector", "compress"]) if (body[name]) params.set(name, body[name]);
    params.set("depth", String(body.depth));
    params.set("drop_flagged", body.drop_flagged ? "1" : "0");
    history.replaceState(null, "", "?" + params.toString());
  }

  async function ask() {
    rk.showError(errorBox, null);
    const text = question.value.trim();
    if (!text) {
      question.focus();
      return;
    }
    const body = { question: text, depth: Number(depth.value), compress: compress.value || null,
      drop_flagged: dropFlagged.checked };
    if (mode.value) body.mode = mode.value;
    if (selector.value.trim()) body.selector = selector.value.trim();
    const seq = ++askSeq;
    saveState(body);
    form.setAttribute("aria-busy", "true");
    status.textContent = generatorPending ? "Loading the generator and answering… (the first question takes longer)"
      : "Answering…";
    try {
      const { data, ms } = await rk.request("ask", { method: "POST", body });
      if (seq !== askSeq) return; // a newer question was answered first
      generatorPending = false;
      renderAnswer(data);
      renderContexts(data);
      renderStatus(data, ms);
    } catch (err) {
      if (seq !== askSeq) return;
      status.textContent = "";
      answerSection.hidden = true; // an answer left on screen would look like the answer to this question
      contextsSection.hidden = true;
      rk.showError(errorBox, err);
    } finally {
      if (seq === askSeq) form.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask();
  });

  let documentFiles = false; // the server shares the indexed files: page references link to them
  const params = new URLSearchParams(location.search);
  if (params.get("q")) question.value = params.get("q");
  if (params.get("selector")) selector.value = params.get("selector");
  if (params.get("depth") && [...depth.options].some((o) => o.value === params.get("depth"))) {
    depth.value = params.get("depth");
  }
  dropFlagged.checked = params.get("drop_flagged") === "1";

  rk.installKeyButton();
  rk.showCollection().then((info) => {
    documentFiles = Boolean(info.document_files);
    const askInfo = info.ask || {};
    setOptions(mode, info.modes || [], params.get("mode"));
    // The form starts from the server's defaults, so what it sends is what the server would have used.
    const defaults = askInfo.defaults || {};
    const compressors = askInfo.compressors || ["lexical"];
    const choices = compressors.flatMap((name) => [name, name + ":2", name + ":0.5"]);
    for (const wanted of [defaults.compress, params.get("compress")]) {
      if (typeof wanted === "string" && wanted && !choices.includes(wanted)) choices.push(wanted);
    }
    setOptions(compress, choices, params.get("compress") || defaults.compress || null);
    if (!params.get("depth") && Number.isInteger(defaults.depth)) {
      const value = String(defaults.depth);
      if (![...depth.options].some((o) => o.value === value)) depth.append(el("option", {}, value));
      depth.value = value;
    }
    if (!params.has("drop_flagged")) dropFlagged.checked = defaults.drop_flagged === true;
    selector.placeholder = defaults.selector || "gap+budget:1024";
    showGenerator(askInfo.generator || null);
    document.body.dataset.ready = "true";
    // A shared link (?q=...) asks its question, as the search page runs its query.
    if (params.get("q") && question.value.trim()) ask();
  }).catch((err) => {
    rk.showError(errorBox, err);
    document.body.dataset.ready = "true";
  });
})();
