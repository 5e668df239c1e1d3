// pixelzoo's page: plain JavaScript, no library, nothing fetched from any network but this server.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const TABS = {sample: "Sample", inpaint: "Inpaint", colorize: "Colourise", upscale: "Upscale",
              reconstruct: "Reconstruct", surprise: "Surprise map", curves: "Curves"};
const IMAGE_KINDS = ["inpaint", "colorize", "upscale", "reconstruct", "surprise"];
const COLORS = ["#264b7a", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d"];
const $ = (id) => document.getElementById(id);
const CARD_ROWS = [["steps", "steps"], ["images_seen", "images seen"],
                   ["test_bpd_full", "test bits/dim (whole test set)"], ["test_bpd", "test bits/dim (last evaluation)"],
                   ["wall_seconds", "training seconds"], ["cores", "cores"], ["weights", "weights"], ["commit", "commit"]];
const DISPLAY_WIDTH = 640;  // pictures are enlarged by a whole factor to about this width (pixels stay square)

function enlarge(img, most = DISPLAY_WIDTH) {
  const k = Math.max(1, Math.min(12, Math.floor(most / img.naturalWidth)));
  img.style.width = `${img.naturalWidth * k}px`;
}

let current = null;      // the chosen model's card (GET /api/model)
let kind = null;         // the open tab
let job = null;          // {id, source: EventSource} of the running computation
let picked = null;       // the chosen image: {test_index} or {upload, fit}
let mask = null;         // Uint8Array(H * W): 1 = pixel kept (inpainting)
let pickedImage = null;  // HTMLImageElement of the chosen image, at the model's size
let erasing = false;

function url(path, params = {}) {
  const q = new URLSearchParams(params);
  if (TOKEN) q.set("token", TOKEN);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function api(path, params = {}, body = undefined) {
  const options = body === undefined ? {} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(url(path, params), options);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {error: `${response.status} ${response.statusText}`}; }
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function showError(message) {
  const e = $("error");
  e.textContent = message;
  e.hidden = !message;
  if (message) $("output").hidden = false;
}

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

// ------------------------------------------------------------------ models and their cards
async function loadModels() {
  const {models} = await api("/api/models");
  const list = $("model-list");
  list.replaceChildren();
  for (const name of models) {
    const b = el("button", {type: "button", "data-model": name}, name);
    b.addEventListener("click", () => chooseModel(name));
    const li = el("li");
    li.append(b);
    list.append(li);
  }
  if (!models.length) $("intro").textContent = "No models: train one, or give serve a folder of runs.";
}

function fmt(v) {
  if (typeof v === "number") {
    if (Number.isInteger(v)) return v.toLocaleString("en");
    return Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4);
  }
  return v === null || v === undefined ? "" : String(v);
}

function fillTable(table, rows, header) {
  table.replaceChildren();
  if (header) {
    const tr = el("tr");
    for (const h of header) tr.append(el("th", {}, h));
    table.append(tr);
  }
  for (const row of rows) {
    const tr = el("tr");
    for (const c of row) tr.append(el("td", {}, fmt(c)));
    table.append(tr);
  }
}

async function chooseModel(name) {
  stopJob();
  showError("");
  for (const b of document.querySelectorAll("#model-list button"))
    b.classList.toggle("active", b.dataset.model === name);
  $("intro").textContent = `Loading ${name} ...`;
  try {
    current = await api("/api/model", {name});
  } catch (e) {
    $("intro").textContent = "";
    showError(e.message);
    return;
  }
  $("intro").hidden = true;
  $("card").hidden = false;
  $("model-name").textContent = name;
  const c = current.card || {};
  const shape = current.image_shape.join("x");
  const rows = [["model", current.model], ["preset", current.preset], ["data", current.data],
                ["images", `${shape}, ${current.num_levels} levels`],
                ["classes", current.num_classes || "none"], ["parameters", current.parameters]];
  for (const [k, label] of CARD_ROWS) if (c[k] !== undefined) rows.push([label, c[k]]);
  fillTable($("card-table"), rows);
  const metrics = $("card-metrics");
  metrics.replaceChildren();
  const sm = current.sample_metrics;
  if (sm) {
    metrics.append(el("p", {}, `Sample metrics at ${sm.count} samples, next to the data's own floor:`));
    const t = el("table");
    fillTable(t, Object.keys(sm.model).map((k) => [k, sm.model[k], (sm.data_floor || {})[k]]),
              ["metric", "model", "real vs real"]);
    metrics.append(t);
  }
  for (const s of document.querySelectorAll(".class-select")) {
    s.replaceChildren();
    s.append(el("option", {value: ""}, "classes in turn / the image's"));
    for (let k = 0; k < (current.num_classes || 0); k++) s.append(el("option", {value: String(k)}, String(k)));
  }
  for (const l of document.querySelectorAll(".needs-class")) l.hidden = !current.num_classes;
  const tabs = $("tabs");
  tabs.replaceChildren();
  tabs.hidden = false;
  for (const k of [...current.capabilities, "curves"]) {
    const b = el("button", {type: "button", role: "tab", "data-kind": k, "aria-selected": "false"}, TABS[k]);
    b.addEventListener("click", () => openTab(k));
    tabs.append(b);
  }
  picked = null;
  openTab("sample");
}

// ------------------------------------------------------------------ tabs
function openTab(k) {
  stopJob();
  kind = k;
  for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", String(b.dataset.kind === k));
  $("panel-sample").hidden = k !== "sample";
  $("panel-image").hidden = !IMAGE_KINDS.includes(k);
  $("panel-curves").hidden = k !== "curves";
  $("output").hidden = true;
  showError("");
  if (IMAGE_KINDS.includes(k)) {
    $("draw").hidden = k !== "inpaint";
    $("picked-view").hidden = k === "inpaint";
    for (const l of document.querySelectorAll(".needs-temperature")) l.hidden = k === "surprise";
    for (const l of document.querySelectorAll(".needs-count")) l.hidden = k === "surprise";
    $("image-form").querySelector(".run").textContent = TABS[k];
    if (!picked) pickTest(0); else redraw();
  }
  if (k === "curves") showCurves();
}

// ------------------------------------------------------------------ the chosen image
function setPicked(source, image, text) {
  picked = source;
  $("picked").textContent = text;
  pickedImage = new Image();
  pickedImage.onload = () => {
    const [, h, w] = current.image_shape;
    if (!mask || mask.length !== h * w) mask = new Uint8Array(h * w);
    redraw();
  };
  pickedImage.src = image;
  $("picked-image").src = image;
}

async function pickTest(index) {
  showError("");
  try {
    const t = await api("/api/test-image", {name: current.name, index});
    $("test-index").value = t.index;
    $("test-index").max = t.count - 1;
    setPicked({test_index: t.index}, t.image,
              `test image ${t.index} of ${t.count}` + (t.label === null ? "" : `, class ${t.label}`));
  } catch (e) { showError(e.message); }
}

function readUpload(file) {
  const reader = new FileReader();
  reader.onload = async () => {
    showError("");
    const source = {upload: reader.result, fit: $("fit").checked};
    try {
      const r = await api("/api/fit-image", {}, {model: current.name, ...source});
      setPicked(source, r.image, `uploaded ${file.name}` + (r.converted ? " (converted)" : ""));
    } catch (e) { showError(e.message); }
  };
  reader.readAsDataURL(file);
}

// ------------------------------------------------------------------ the mask (inpainting)
function redraw() {
  const canvas = $("canvas");
  if (!current || !pickedImage || !pickedImage.complete) return;
  const [, h, w] = current.image_shape;
  const scale = Math.max(1, Math.floor(320 / Math.max(h, w)));
  canvas.width = w * scale;
  canvas.height = h * scale;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(pickedImage, 0, 0, w * scale, h * scale);
  ctx.fillStyle = "rgba(40, 90, 200, 0.45)";
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++)
    if (!mask[i * w + j]) ctx.fillRect(j * scale, i * scale, scale, scale);
}

let lastCell = null;  // the pixel the stroke was last at: a fast stroke paints the line between

function cellAt(event) {
  const [, h, w] = current.image_shape;
  const r = $("canvas").getBoundingClientRect();
  return [Math.floor((event.clientY - r.top) / r.height * h), Math.floor((event.clientX - r.left) / r.width * w)];
}

function paint(event, startStroke) {
  const [, h, w] = current.image_shape;
  const [i, j] = cellAt(event);
  const [i0, j0] = startStroke || !lastCell ? [i, j] : lastCell;
  const steps = Math.max(Math.abs(i - i0), Math.abs(j - j0), 1);
  const brush = Math.max(0, Math.round(Math.min(h, w) / 28) - 1);
  for (let s = 0; s <= steps; s++) {
    const ci = Math.round(i0 + (i - i0) * s / steps), cj = Math.round(j0 + (j - j0) * s / steps);
    for (let di = -brush; di <= brush; di++) for (let dj = -brush; dj <= brush; dj++) {
      const a = ci + di, b = cj + dj;
      if (a >= 0 && a < h && b >= 0 && b < w) mask[a * w + b] = erasing ? 0 : 1;
    }
  }
  lastCell = [i, j];
  redraw();
}

function setupCanvas() {
  const canvas = $("canvas");
  let down = false;
  canvas.addEventListener("pointerdown", (e) => { down = true; canvas.setPointerCapture(e.pointerId); paint(e, true); });
  canvas.addEventListener("pointermove", (e) => { if (down) paint(e, false); });
  canvas.addEventListener("pointerup", () => { down = false; });
  $("mask-top").addEventListener("click", () => {
    const [, h, w] = current.image_shape;
    mask.fill(0);
    mask.fill(1, 0, Math.floor(h / 2) * w);
    redraw();
  });
  $("mask-clear").addEventListener("click", () => { mask.fill(0); redraw(); });
  $("mask-erase-toggle").addEventListener("click", (e) => {
    erasing = !erasing;
    e.target.setAttribute("aria-pressed", String(erasing));
    e.target.textContent = erasing ? "Erasing (click to draw)" : "Erase";
  });
}

// ------------------------------------------------------------------ computations
function formValues(form) {
  const values = {};
  for (const input of form.querySelectorAll("input, select")) {
    if (!input.name || input.closest("[hidden]")) continue;
    values[input.name] = input.value === "" ? null : (input.tagName === "SELECT" ? Number(input.value) : input.value);
  }
  return values;
}

function setRunning(running) {
  for (const b of document.querySelectorAll(".run")) b.disabled = running;
  for (const b of document.querySelectorAll(".stop")) b.disabled = !running;
}

async function startJob(body) {
  stopJob();
  showError("");
  $("output").hidden = false;
  $("result").removeAttribute("src");
  $("caption").textContent = "";
  $("progress").value = 0;
  $("status-text").textContent = "queued ...";
  setRunning(true);
  let id;
  try {
    ({job: id} = await api("/api/jobs", {}, {model: current.name, kind, ...body}));
  } catch (e) {
    setRunning(false);
    $("status-text").textContent = "";
    showError(e.message);
    return;
  }
  const source = new EventSource(url(`/api/jobs/${id}/events`));
  job = {id, source};
  source.addEventListener("state", (event) => {
    const s = JSON.parse(event.data);
    if (s.total) $("progress").value = s.done / s.total;
    if (s.image) $("result").src = s.image;
    const level = s.level ? ` of level ${s.level}` : "";
    if (s.status === "running") $("status-text").textContent = s.total ? `row ${s.done} of ${s.total}${level}` : "running";
    if (s.status === "waiting") $("status-text").textContent = "waiting for the model ...";
    if (["done", "failed", "stopped"].includes(s.status)) {
      source.close();
      job = null;
      setRunning(false);
      if (s.status === "done") {
        $("progress").value = 1;
        $("result").src = s.result.image;
        $("caption").textContent = s.result.caption;
        $("status-text").textContent = `done in ${s.seconds} s`;
      } else if (s.status === "failed") {
        $("status-text").textContent = "failed";
        showError(s.message);
      } else {
        $("status-text").textContent = "stopped";
      }
    }
  });
  source.onerror = () => {
    if (job && job.source === source) { source.close(); job = null; setRunning(false); showError("the connection to the server was lost"); }
  };
}

function stopJob() {
  if (!job) return;
  const {id, source} = job;
  fetch(url(`/api/jobs/${id}/stop`), {method: "POST"});
  // the stream reports "stopped" and closes itself; if it is gone already, reset here
  if (source.readyState === EventSource.CLOSED) { job = null; setRunning(false); }
}

// ------------------------------------------------------------------ curves
const CURVE_METRICS = ["train_bpd", "test_bpd", "train_loss", "test_loss", "lr", "images_per_s"];

function chart(metric, series) {
  const W = 420, H = 220, L = 52, R = 10, T = 22, B = 28;
  const lines = Object.entries(series).filter(([, m]) => m[metric]).map(([name, m]) => [name, m[metric]]);
  if (!lines.length) return null;
  const pts = lines.flatMap(([, p]) => p);
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "curve");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("data-metric", metric);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  add("text", {x: L, y: 14}, metric.replace(/_/g, " "));
  add("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"});
  add("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"});
  add("text", {x: L, y: H - 8}, fmt(x0));
  add("text", {x: W - R, y: H - 8, "text-anchor": "end"}, `step ${fmt(x1)}`);
  add("text", {x: L - 4, y: T + 4, "text-anchor": "end"}, y1.toPrecision(3));
  add("text", {x: L - 4, y: H - B, "text-anchor": "end"}, y0.toPrecision(3));
  lines.forEach(([name, p], k) => {
    add("polyline", {points: p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "),
                     fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 1.5});
    if (lines.length > 1) add("text", {x: W - R, y: T + 12 * k, "text-anchor": "end", fill: COLORS[k % COLORS.length]}, name);
  });
  return svg;
}

async function showCurves() {
  const box = $("curves");
  box.replaceChildren(el("p", {class: "muted"}, "loading ..."));
  try {
    const {series} = await api("/api/curves", {name: current.name});
    box.replaceChildren();
    for (const m of CURVE_METRICS) { const c = chart(m, series); if (c) box.append(c); }
    if (!box.children.length) box.append(el("p", {class: "muted"}, "No curves: the run has logged nothing yet."));
  } catch (e) { box.replaceChildren(); showError(e.message); }
  const ev = $("evaluation");
  ev.replaceChildren();
  if (current.evaluation && Object.keys(current.evaluation).length) {
    ev.append(el("h3", {}, "Evaluation"));
    const t = el("table");
    fillTable(t, Object.entries(current.evaluation), ["metric", "value"]);
    ev.append(t);
  }
}

// ------------------------------------------------------------------ wiring
function setup() {
  $("result").addEventListener("load", () => enlarge($("result")));
  $("sample-form").addEventListener("submit", (e) => { e.preventDefault(); startJob(formValues(e.target)); });
  $("image-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!picked) { showError("choose an image first"); return; }
    const body = {...formValues(e.target), ...picked};
    if (kind === "inpaint") body.mask = Array.from(mask).join("");
    startJob(body);
  });
  for (const b of document.querySelectorAll(".stop")) b.addEventListener("click", stopJob);
  $("test-index").addEventListener("change", (e) => pickTest(Number(e.target.value)));
  $("test-random").addEventListener("click", () => pickTest(Math.floor(Math.random() * (Number($("test-index").max) + 1 || 1))));
  $("upload").addEventListener("change", (e) => { if (e.target.files.length) readUpload(e.target.files[0]); });
  setupCanvas();
  loadModels().catch((e) => showError(e.message));
  setInterval(async () => {
    try { const q = await api("/api/status"); $("queue").textContent = `queue ${q.waiting + q.running} of ${q.capacity}`; }
    catch (e) { $("queue").textContent = ""; }
  }, 3000);
}

setup();
