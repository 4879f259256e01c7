// neuraleq web app: words → 5-band EQ, drawn, heard and exported. No libraries, no network
// beyond this server. Audio runs through IIRFilterNodes fed the server's exact RBJ
// coefficients (BiquadFilterNode ignores Q on shelves, so it would not match the response).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const CURVE = { width: 720, height: 300, left: 36, right: 8, top: 8, bottom: 22, maxDb: 15 };
const MORPH_STEPS = 33;
const FADE_S = 0.03; // crossfade between filter chains: long enough to be click-free

const state = {
  layout: null, names: null, formats: [], vocabulary: [], hasMap: false, hasDescribe: false,
  term: "", seed: 0, strength: 1, centre: true, label: "flat",
  setting: null, freqs: null, responseDb: null, loudnessDb: 0, coefficients: null,
  coefficientsRate: null, morph: null, mapWords: null,
};

// ------------------------------------------------------------------ API

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const reply = await fetch("/api" + path, init);
  const json = (reply.headers.get("content-type") || "").includes("json");
  const data = json ? await reply.json() : await reply.text();
  if (!reply.ok) throw new Error(json ? data.error : reply.statusText);
  return data;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function guarded(action) {
  return (...args) => Promise.resolve().then(() => action(...args))
    .catch((error) => setStatus(error.message, true));
}

let started = null; // the start-up promise (set below)
// A control's action, run once the page has started: an early click or drag is queued, not
// applied to a page without its layout or words (nor overwritten by the first setting).
function whenStarted(action) {
  return guarded(async (...args) => {
    await started;
    return action(...args);
  });
}

let latestView = 0;
// Answers can arrive out of order (a new request shape compiles on the server while others
// answer at once), so each action that will show a setting claims the view, and its answer
// is shown only if no newer action has claimed it since. Returns "is it still current?".
function claimView() {
  const ticket = ++latestView;
  return () => ticket === latestView;
}

// A pointer event's position in an SVG's own viewBox units, whatever its CSS size.
function svgPoint(svgElement, event) {
  const point = new DOMPoint(event.clientX, event.clientY)
    .matrixTransform(svgElement.getScreenCTM().inverse());
  return [point.x, point.y];
}

// ------------------------------------------------------------------ the curve

const xOf = (hz) => CURVE.left + (CURVE.width - CURVE.left - CURVE.right) *
  Math.log10(hz / 20) / Math.log10(1000);
const hzOf = (x) => 20 * Math.pow(1000, (x - CURVE.left) / (CURVE.width - CURVE.left - CURVE.right));
const plotHalf = () => (CURVE.height - CURVE.top - CURVE.bottom) / 2;
const yOf = (db) => CURVE.top + plotHalf() * (1 - Math.max(-CURVE.maxDb, Math.min(CURVE.maxDb, db)) / CURVE.maxDb);
const dbOf = (y) => CURVE.maxDb * (1 - (y - CURVE.top) / plotHalf());

function svg(tag, attributes, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function drawGrid() {
  const grid = $("grid");
  const bottom = CURVE.height - CURVE.bottom;
  for (const hz of [20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]) {
    svg("line", { x1: xOf(hz), x2: xOf(hz), y1: CURVE.top, y2: bottom, class: "gridline" }, grid);
    svg("text", { x: xOf(hz), y: CURVE.height - 6, "text-anchor": "middle" }, grid)
      .textContent = hz >= 1000 ? `${hz / 1000}k` : `${hz}`;
  }
  for (const db of [-12, -6, 0, 6, 12]) {
    svg("line", { x1: CURVE.left, x2: CURVE.width - CURVE.right, y1: yOf(db), y2: yOf(db),
                  class: db === 0 ? "gridline zero" : "gridline" }, grid);
    svg("text", { x: CURVE.left - 4, y: yOf(db) + 4, "text-anchor": "end" }, grid)
      .textContent = `${db > 0 ? "+" : ""}${db}`;
  }
}

function drawCurve() {
  if (!state.responseDb) return;
  const points = state.freqs.map((hz, i) => `${xOf(hz).toFixed(2)},${yOf(state.responseDb[i]).toFixed(3)}`);
  $("response-path").setAttribute("d", "M" + points.join("L"));
  const handles = $("handles");
  handles.replaceChildren();
  state.layout.forEach((band, i) => {
    const [gain, freq] = state.setting.slice(3 * i, 3 * i + 2);
    const handle = svg("circle", { cx: xOf(freq), cy: yOf(gain), r: 7, class: "handle",
                                   "data-band": i + 1 }, handles);
    handle.addEventListener("pointerdown", (event) => startHandleDrag(event, i));
  });
  const rows = state.layout.map((band, i) => {
    const [gain, freq, q] = state.setting.slice(3 * i, 3 * i + 3);
    return `<tr><td>${i + 1}</td><td>${band.kind.replace("_", " ")}</td><td>${freq.toFixed(0)}</td>` +
           `<td>${gain.toFixed(2)}</td><td>${q.toFixed(2)}</td></tr>`;
  });
  document.querySelector("#bands tbody").innerHTML = rows.join("");
}

function startHandleDrag(event, band) {
  const curve = $("curve");
  const [low, high] = state.layout[band].freq_range;
  const [gainLow, gainHigh] = state.layout[band].gain_range;
  event.target.setPointerCapture(event.pointerId);
  const move = (moveEvent) => {
    const [x, y] = svgPoint(curve, moveEvent);
    const setting = state.setting.slice();
    setting[3 * band + 1] = Math.min(high, Math.max(low, hzOf(x)));
    setting[3 * band] = Math.min(gainHigh, Math.max(gainLow, dbOf(y)));
    scheduleSetting(setting, "edited");
  };
  const stop = () => {
    for (const type of ["pointermove", "pointerup", "pointercancel"]) {
      event.target.removeEventListener(type, type === "pointermove" ? move : stop);
    }
  };
  event.target.addEventListener("pointermove", move);
  event.target.addEventListener("pointerup", stop);
  event.target.addEventListener("pointercancel", stop);
}

// ------------------------------------------------------------------ settings

function audioRate() {
  if (audioEngine.ctx) return audioEngine.ctx.sampleRate;
  return audioEngine.buffer ? audioEngine.buffer.sampleRate : 48000;
}

// Show a setting whose response and coefficients are already known: view holds setting,
// responseDb, freqs, loudnessDb, coefficients and label.
function show(view) {
  Object.assign(state, view,
                { coefficientsRate: view.coefficients ? view.coefficients.sample_rate : null });
  drawCurve();
  audioEngine.update();
  describeSoon();
}

let pendingEdit = null, editInFlight = false;
// Edited settings: one request at a time, always the latest (a drag sends many).
function scheduleSetting(setting, label) {
  pendingEdit = { setting, label, current: claimView() };
  if (!editInFlight) flushSetting();
}

async function flushSetting() {
  editInFlight = true;
  try {
    while (pendingEdit) {
      const { setting, label, current } = pendingEdit;
      pendingEdit = null;
      const rate = audioRate();
      const [curve, coefficients] = await Promise.all([
        api("/response", { setting }), api("/coefficients", { setting, sample_rate: rate })]);
      const loudnessDb = rate === 48000 ? curve.loudness_gain_db[0] : (await api("/response",
        { setting, sample_rate: rate, high_hz: Math.min(20000, 0.45 * rate) })).loudness_gain_db[0];
      if (!current()) continue;
      show({ setting, responseDb: curve.response_db[0], freqs: curve.freqs_hz, loudnessDb,
             coefficients, label });
    }
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    editInFlight = false;
  }
}

async function generate() {
  const { term, strength, seed, centre } = state;
  if (!term) return;
  const current = claimView();
  const reply = await api("/generate", {
    term, variations: 1, strength, seed, centre, include: ["response", "coefficients"],
    sample_rate: audioRate() });
  if (!current()) return;
  show({ setting: reply.settings[0], responseDb: reply.response_db[0], freqs: reply.freqs_hz,
         loudnessDb: reply.loudness_gain_db[0], coefficients: reply.coefficients[0],
         label: centre ? term : `${term} #${seed}` });
  setStatus(centre ? `${term}: its centre setting` : `${term}: variation ${seed}`);
  $("seed-label").textContent = centre ? "" : `seed ${seed}`;
  writeUrl();
}

function writeUrl() {
  const params = new URLSearchParams({ term: state.term, strength: state.strength,
                                       seed: state.seed, centre: state.centre ? 1 : 0 });
  history.replaceState(null, "", "#" + params.toString());
}

function readUrl() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.get("term")) return false;
  state.term = params.get("term");
  state.strength = Math.max(0, Math.min(2, Number(params.get("strength") || 1))) || 0;
  state.seed = Math.max(0, Math.floor(Number(params.get("seed") || 0))) || 0;
  state.centre = params.get("centre") !== "0";
  $("term").value = state.term;
  $("strength").value = state.strength;
  $("strength-value").textContent = state.strength.toFixed(2);
  return true;
}

let describeTimer = null;
function describeSoon() {
  if (!state.hasDescribe) return;
  clearTimeout(describeTimer);
  describeTimer = setTimeout(guarded(async () => {
    const setting = state.setting;
    const reply = await api("/describe", { setting, k: 5 });
    if (state.setting !== setting) return; // a newer setting's description follows
    $("nearest").hidden = false;
    $("nearest").textContent = "nearest words: " + reply.nearest[0]
      .map((e) => `${e.word} (${e.distance_db.toFixed(1)} dB)`).join(", ");
  }), 150);
}

// ------------------------------------------------------------------ morph

const morphCache = new Map(); // "from\nto\nrate" → promise of the /morph answer
const MORPH_CACHE_SIZE = 16;
// One request per pair of words (and sample rate), shared by every event that needs it.
function loadMorph(from, to) {
  const rate = audioRate(), key = [from, to, rate].join("\n");
  if (!morphCache.has(key)) {
    const promise = api("/morph", { from, to, steps: MORPH_STEPS,
                                    include: ["response", "coefficients"], sample_rate: rate })
      .then((reply) => ({ from, to, ...reply }));
    promise.catch(() => { if (morphCache.get(key) === promise) morphCache.delete(key); });
    morphCache.set(key, promise);
    if (morphCache.size > MORPH_CACHE_SIZE) morphCache.delete(morphCache.keys().next().value);
  }
  return morphCache.get(key);
}

function showMorphAt(morph, position) {
  const step = Math.round(position * (MORPH_STEPS - 1));
  state.morph = morph;
  $("morph-value").textContent = `${Math.round(100 * position)}%`;
  show({ setting: morph.settings[step], responseDb: morph.response_db[step],
         freqs: morph.freqs_hz, loudnessDb: morph.loudness_gain_db[step],
         coefficients: morph.coefficients[step],
         label: `${morph.from}→${morph.to} ${(step / (MORPH_STEPS - 1)).toFixed(2)}` });
  setStatus(state.label);
}

// Show from→to at the slider's position once that morph is loaded, unless a newer action
// (another pair, a word, an edit) has claimed the view meanwhile.
async function morphTo(from, to) {
  const current = claimView();
  const morph = await loadMorph(from, to);
  if (current()) showMorphAt(morph, Number($("morph-position").value));
}

async function onMorphInput() {
  const from = $("morph-from").value.trim(), to = $("morph-to").value.trim();
  if (!from || !to) return setStatus("give both words of the morph", true);
  await morphTo(from, to);
}

// ------------------------------------------------------------------ word map

// Draws the map (its panel stays hidden until the page has started).
function drawMap(reply) {
  const map = $("map");
  const xs = reply.xy.map((p) => p[0]), ys = reply.xy.map((p) => p[1]);
  // margins leave room for the labels, which sit to the right of their dots
  const scale = (v, lo, hi, start, end) => start + (end - start) * (hi > lo ? (v - lo) / (hi - lo) : 0.5);
  const [xlo, xhi, ylo, yhi] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  state.mapWords = reply.words.map((word, i) => ({
    word, x: scale(xs[i], xlo, xhi, 16, 320), y: scale(ys[i], ylo, yhi, 284, 16),
    r: 4 + 8 * (reply.confidence[i] == null ? 0.4 : reply.confidence[i]) }));
  map.replaceChildren();
  const line = svg("line", { class: "drag-line", visibility: "hidden" }, map);
  for (const entry of state.mapWords) {
    const group = svg("g", { class: "word", "data-word": entry.word }, map);
    svg("circle", { cx: entry.x, cy: entry.y, r: entry.r }, group);
    svg("text", { x: entry.x + entry.r + 2, y: entry.y + 4 }, group).textContent = entry.word;
    group.addEventListener("pointerdown", (event) => startMapDrag(event, entry, line));
  }
}

// Dragging from a word toward the word nearest the pointer morphs between them; the
// position is the pointer's projection on the line joining them.
function startMapDrag(event, from, line) {
  const map = $("map");
  map.setPointerCapture(event.pointerId);
  let moved = false;
  const move = guarded(async (e) => {
    const [x, y] = svgPoint(map, e);
    moved = moved || Math.hypot(x - from.x, y - from.y) > from.r;
    if (!moved) return;
    const others = state.mapWords.filter((w) => w !== from);
    const nearest = others.reduce((a, b) => Math.hypot(a.x - x, a.y - y) <= Math.hypot(b.x - x, b.y - y) ? a : b);
    const dx = nearest.x - from.x, dy = nearest.y - from.y;
    const t = Math.max(0, Math.min(1, ((x - from.x) * dx + (y - from.y) * dy) / (dx * dx + dy * dy)));
    for (const [key, value] of Object.entries({ x1: from.x, y1: from.y, x2: nearest.x,
                                                y2: nearest.y, visibility: "visible" })) {
      line.setAttribute(key, value);
    }
    $("morph-from").value = from.word; $("morph-to").value = nearest.word;
    $("morph-position").value = t;
    await morphTo(from.word, nearest.word);
  });
  const stop = guarded(async () => {
    for (const type of ["pointermove", "pointerup", "pointercancel"]) {
      map.removeEventListener(type, type === "pointermove" ? move : stop);
    }
    line.setAttribute("visibility", "hidden");
    if (!moved) await setTerm(from.word);
  });
  map.addEventListener("pointermove", move);
  map.addEventListener("pointerup", stop);
  map.addEventListener("pointercancel", stop);
}

// ------------------------------------------------------------------ audio

const audioEngine = {
  ctx: null, buffer: null, source: null, dry: null, wetLevel: null, chain: null, rate: null,

  buildChain(ctx, coefficients) {
    const filters = coefficients.bands.map((band) => ctx.createIIRFilter(band.b, band.a));
    filters.reduce((a, b) => { a.connect(b); return b; });
    const output = ctx.createGain();
    filters[filters.length - 1].connect(output);
    return { input: filters[0], output, filters };
  },

  async coefficientsAt(rate) {
    if (state.coefficients && state.coefficientsRate === rate) return state.coefficients;
    return api("/coefficients", { setting: state.setting, sample_rate: rate });
  },

  async load(file) {
    const rate = this.ctx ? this.ctx.sampleRate : 48000;
    const decoder = new OfflineAudioContext(1, 1, rate);
    this.buffer = await decoder.decodeAudioData(await file.arrayBuffer());
    $("play").disabled = false;
    $("audio-status").textContent = `${file.name}: ${this.buffer.duration.toFixed(1)} s`;
  },

  levels() {
    const bypass = $("bypass").checked;
    const level = $("match").checked ? Math.pow(10, state.loudnessDb / 20) : 1;
    return { dry: bypass ? 1 : 0, wet: bypass ? 0 : level };
  },

  async play() {
    if (this.source) return this.stop();
    if (!this.ctx) this.ctx = new AudioContext({ sampleRate: this.buffer.sampleRate });
    await this.ctx.resume();
    const ctx = this.ctx, levels = this.levels();
    this.source = ctx.createBufferSource();
    Object.assign(this.source, { buffer: this.buffer, loop: true });
    this.dry = ctx.createGain(); this.dry.gain.value = levels.dry;
    this.wetLevel = ctx.createGain(); this.wetLevel.gain.value = levels.wet;
    this.source.connect(this.dry).connect(ctx.destination);
    this.wetLevel.connect(ctx.destination);
    this.chain = this.buildChain(ctx, await this.coefficientsAt(ctx.sampleRate));
    this.source.connect(this.chain.input);
    this.chain.output.connect(this.wetLevel);
    this.source.start();
    $("play").textContent = "stop";
  },

  stop() {
    this.source.stop();
    for (const node of [this.source, this.dry, this.wetLevel, this.chain.output]) node.disconnect();
    this.source = null;
    $("play").textContent = "play";
  },

  // New coefficients: a second chain fades in while the old one fades out.
  update: guarded(async function () {
    const engine = audioEngine;
    if (!engine.source) return;
    const ctx = engine.ctx, now = ctx.currentTime, levels = engine.levels();
    engine.dry.gain.setTargetAtTime(levels.dry, now, FADE_S / 3);
    engine.wetLevel.gain.setTargetAtTime(levels.wet, now, FADE_S / 3);
    const setting = state.setting;
    const coefficients = await engine.coefficientsAt(ctx.sampleRate);
    if (!engine.source || state.setting !== setting) return; // a newer update is on its way
    const old = engine.chain, fresh = engine.buildChain(ctx, coefficients);
    fresh.output.gain.value = 0;
    engine.source.connect(fresh.input);
    fresh.output.connect(engine.wetLevel);
    const start = ctx.currentTime;
    fresh.output.gain.setValueAtTime(0, start);
    fresh.output.gain.linearRampToValueAtTime(1, start + FADE_S);
    old.output.gain.setValueAtTime(1, start);
    old.output.gain.linearRampToValueAtTime(0, start + FADE_S);
    engine.chain = fresh;
    setTimeout(() => { engine.source && engine.source.disconnect(old.input); old.output.disconnect(); },
               1000 * FADE_S + 200);
  }),

  // The loaded audio through the current setting's filters, rendered offline with the same
  // chain as playback (used to check that what is heard matches the drawn response).
  async renderOffline() {
    const buffer = this.buffer, rate = buffer.sampleRate;
    const offline = new OfflineAudioContext(1, buffer.length, rate);
    const source = offline.createBufferSource();
    source.buffer = buffer;
    const chain = this.buildChain(offline, await this.coefficientsAt(rate));
    source.connect(chain.input);
    chain.output.connect(offline.destination);
    source.start();
    const rendered = await offline.startRendering();
    return { rate, input: Array.from(buffer.getChannelData(0)),
             output: Array.from(rendered.getChannelData(0)) };
  },
};

// ------------------------------------------------------------------ presets

async function exportPreset(format) {
  const reply = await fetch("/api/presets/export", { method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ setting: state.setting, format: format.name, names: state.label }) });
  if (!reply.ok) throw new Error((await reply.json()).error);
  const text = await reply.text();
  const name = (reply.headers.get("content-disposition") || "").match(/filename="([^"]+)"/);
  window.neuraleq.lastExport = { format: format.name, text };
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: reply.headers.get("content-type") }));
  link.download = name ? name[1] : `neuraleq-preset${format.suffix}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 5000);
  setStatus(`exported ${format.name}`);
}

async function importPreset(file) {
  const reply = await api("/presets/import", { text: await file.text(), fit: $("fit").checked });
  $("preset-notes").replaceChildren(...reply.notes.map((note) => {
    const item = document.createElement("li"); item.textContent = note; return item; }));
  scheduleSetting(reply.settings[0], reply.names[0]);
  setStatus(`imported ${file.name} (${reply.format})`);
}

// ------------------------------------------------------------------ start

async function setTerm(term, { centre = true, seed = 0 } = {}) {
  Object.assign(state, { term, centre, seed });
  $("term").value = term;
  await generate();
}

// Start-up fills only what the user has not: they may type or drag while it runs.
async function start() {
  const fromUrl = readUrl(); // before any input, which would otherwise be overwritten
  const [index, vocabulary] = await Promise.all([api(""), api("/vocabulary")]);
  Object.assign(state, { layout: index.layout, names: index.parameter_names,
                         formats: index.preset_formats, vocabulary: vocabulary.words,
                         hasMap: vocabulary.has_map, hasDescribe: vocabulary.has_describe });
  $("words").replaceChildren(...vocabulary.words.map((w) => {
    const option = document.createElement("option"); option.value = w.word; return option; }));
  drawGrid();
  const suffixes = { json: ".json", csv: ".csv", apo: ".txt", rew: ".txt", easyeffects: ".json" };
  const labels = { json: "JSON", csv: "CSV", apo: "Equalizer APO / AutoEQ", rew: "REW",
                   easyeffects: "EasyEffects" };
  $("export-buttons").replaceChildren(...state.formats.map((name) => {
    const button = document.createElement("button");
    button.textContent = labels[name] || name;
    button.dataset.format = name;
    button.addEventListener("click", whenStarted(() => exportPreset({ name, suffix: suffixes[name] })));
    return button; }));
  if (state.hasMap) drawMap(await api("/map"));
  const words = vocabulary.words.map((w) => w.word);
  if (!$("morph-from").value) $("morph-from").value = words[0] || "";
  if (!$("morph-to").value) $("morph-to").value = words[1] || words[0] || "";
  if (!fromUrl) {
    state.term = words[0];
    if (!$("term").value) $("term").value = words[0];
  }
  await generate();
  $("map-panel").hidden = !state.hasMap;
  document.documentElement.dataset.ready = "true";
  return true;
}

function bindControls() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault(); // at once: the form must not reload the page while start-up runs
    const term = $("term").value.trim();
    if (term) whenStarted(() => setTerm(term))();
  });
  $("strength").addEventListener("input", whenStarted(async () => {
    state.strength = Number($("strength").value);
    $("strength-value").textContent = state.strength.toFixed(2);
    await generate();
  }));
  $("centre").addEventListener("click", whenStarted(() => setTerm(state.term)));
  $("reroll").addEventListener("click", whenStarted(() => setTerm(state.term,
    { centre: false, seed: state.centre ? 1 : state.seed + 1 })));
  for (const id of ["morph-position", "morph-from", "morph-to"]) {
    $(id).addEventListener(id === "morph-position" ? "input" : "change", whenStarted(onMorphInput));
  }
  $("audio-file").addEventListener("change", guarded(async () => {
    if ($("audio-file").files[0]) await audioEngine.load($("audio-file").files[0]);
  }));
  $("play").addEventListener("click", whenStarted(() => audioEngine.play()));
  for (const id of ["bypass", "match"]) $(id).addEventListener("change", () => audioEngine.update());
  $("preset-file").addEventListener("change", whenStarted(async () => {
    if ($("preset-file").files[0]) await importPreset($("preset-file").files[0]);
  }));
}

bindControls();
started = start();
// ready: resolves true once the page has its words, map and first setting (the <html>
// element then carries data-ready="true"); rejects with the reason if start-up failed.
const ready = started.then(() => true);
ready.catch((error) => setStatus(error.message, true));
window.neuraleq = { state, api, audio: audioEngine, lastExport: null, ready };
