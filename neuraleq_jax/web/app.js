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
  limits: null, strengthRange: null,
  // what is shown: the word it came from, and whether it was changed since (edited: the URL
  // then carries the setting itself); group: the gesture that showed it (see show)
  term: "", seed: 0, strength: 1, centre: false, label: "flat", edited: false, group: null,
  status: "",
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
    // the last label ends at the plot's edge, so that it is not cut off
    svg("text", { x: xOf(hz), y: CURVE.height - 6, "text-anchor": hz < 20000 ? "middle" : "end" },
        grid)
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
  // the handles stay the same elements: a drag holds its handle's pointer capture throughout
  const handles = $("handles");
  state.layout.forEach((band, i) => {
    const [gain, freq] = state.setting.slice(3 * i, 3 * i + 2);
    let handle = handles.children[i];
    if (!handle) {
      handle = svg("circle", { r: 7, class: "handle", "data-band": i + 1 }, handles);
      handle.addEventListener("pointerdown", (event) => startHandleDrag(event, i));
    }
    handle.setAttribute("cx", xOf(freq));
    handle.setAttribute("cy", yOf(gain));
  });
  const rows = state.layout.map((band, i) => {
    const [gain, freq, q] = state.setting.slice(3 * i, 3 * i + 3);
    return `<tr><td>${i + 1}</td><td>${band.kind.replace("_", " ")}</td><td>${freq.toFixed(0)}</td>` +
           `<td>${gain.toFixed(2)}</td><td>${q.toFixed(2)}</td></tr>`;
  });
  document.querySelector("#bands tbody").innerHTML = rows.join("");
}

let gestures = 0; // numbers the drags and slider travels, each one undo step
function startHandleDrag(event, band) {
  const curve = $("curve");
  const [low, high] = state.layout[band].freq_range;
  const [gainLow, gainHigh] = state.layout[band].gain_range;
  const group = `handle ${++gestures}`;
  event.target.setPointerCapture(event.pointerId);
  const move = (moveEvent) => {
    const [x, y] = svgPoint(curve, moveEvent);
    const setting = state.setting.slice();
    // 4 significant digits of Hz and 0.01 dB: finer than a pixel, and short in the URL
    const freq = Number(Math.min(high, Math.max(low, hzOf(x))).toPrecision(4));
    const gain = Math.round(100 * Math.min(gainHigh, Math.max(gainLow, dbOf(y)))) / 100;
    setting[3 * band + 1] = freq;
    setting[3 * band] = gain;
    const label = state.label.endsWith(" (edited)") ? state.label : `${state.label} (edited)`;
    scheduleSetting(setting, { label, group,
      status: `edited band ${band + 1}: ${freq.toFixed(0)} Hz, ${gain.toFixed(2)} dB` });
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

// Show a setting whose response and coefficients are already known (view: setting,
// responseDb, freqs, loudnessDb, coefficients, label; from a word also term, strength, seed,
// centre) as the answer to an action. Its status replaces any earlier error, the URL follows,
// and undo returns to what was shown before. Shows of one gesture (a drag, a slider's travel)
// share a group and make one undo step; edited: the setting is not its word's (an edit, an
// import, a morph), so the URL carries the setting itself.
function show(view, { status, edited, group = null }) {
  if (state.setting && (group === null || group !== state.group)) {
    undoStack.past.push(snapshot());
    if (undoStack.past.length > UNDO_LIMIT) undoStack.past.shift();
  }
  undoStack.future = [];
  Object.assign(state, view, { setting: view.setting.map(Math.fround), edited, group, status,
    coefficientsRate: view.coefficients ? view.coefficients.sample_rate : null });
  redraw({ urlSoon: group !== null });
}

// Everything that follows from the state: the curve, the audio, the URL, the status.
function redraw({ urlSoon = false } = {}) {
  drawCurve();
  $("seed-label").textContent = state.centre ? "" : `seed ${state.seed}`;
  audioEngine.update();
  describeSoon();
  writeUrl({ soon: urlSoon });
  setStatus(state.status);
  $("undo").disabled = !undoStack.past.length;
  $("redo").disabled = !undoStack.future.length;
}

// ------------------------------------------------------------------ undo

const UNDO_LIMIT = 100;
const undoStack = { past: [], future: [] };
const SHOWN_KEYS = ["setting", "responseDb", "freqs", "loudnessDb", "coefficients",
  "coefficientsRate", "label", "term", "strength", "seed", "centre", "edited", "status"];

function snapshot() {
  return Object.fromEntries(SHOWN_KEYS.map((key) => [key, state[key]]));
}

// Back (undo) or forward (redo) one step; an answer still on its way is for a state being left.
function undoStep(back) {
  const [from, to] = back ? [undoStack.past, undoStack.future] : [undoStack.future, undoStack.past];
  if (!from.length) return;
  claimView();
  pendingEdit = null;
  to.push(snapshot());
  Object.assign(state, from.pop(), { group: null });
  syncControls();
  redraw();
}

// The controls that show the state's word and strength (set only where the state is replaced
// as a whole: a user may be typing or dragging while other answers arrive).
function syncControls() {
  $("term").value = state.term;
  $("strength").value = state.strength;
  $("strength-value").textContent = state.strength.toFixed(2);
}

// ------------------------------------------------------------------ edited settings

// The response, loudness and coefficients of a setting: a view for show.
async function viewOf(setting) {
  const rate = audioRate();
  const [curve, coefficients] = await Promise.all([
    api("/response", { setting }), api("/coefficients", { setting, sample_rate: rate })]);
  const loudnessDb = rate === 48000 ? curve.loudness_gain_db[0] : (await api("/response",
    { setting, sample_rate: rate, high_hz: Math.min(20000, 0.45 * rate) })).loudness_gain_db[0];
  return { setting, responseDb: curve.response_db[0], freqs: curve.freqs_hz, loudnessDb,
           coefficients };
}

let pendingEdit = null, editInFlight = false;
// Edited settings: one request at a time, always the latest (a drag sends many). Settings are
// float32, as the server computes them, so the URL's shortest float32 digits reproduce them.
function scheduleSetting(setting, { label, status, group = null }) {
  pendingEdit = { setting: setting.map(Math.fround), label, status, group, current: claimView() };
  if (!editInFlight) flushSetting();
}

async function flushSetting() {
  editInFlight = true;
  try {
    while (pendingEdit) {
      const { setting, label, status, group, current } = pendingEdit;
      pendingEdit = null;
      const view = await viewOf(setting);
      if (current()) show({ ...view, label }, { status, edited: true, group });
    }
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    editInFlight = false;
  }
}

// A word's setting (source: term, strength, seed, centre); true once shown, false if a newer
// action claimed the view first. The state changes only with the answer, so a refused word
// leaves the page as it was.
async function generate(source, { group = null } = {}) {
  const { term, strength, seed, centre } = source;
  const current = claimView();
  const reply = await api("/generate", {
    term, variations: 1, strength, seed, centre, include: ["response", "coefficients"],
    sample_rate: audioRate() });
  if (!current()) return false;
  show({ term, strength, seed, centre, setting: reply.settings[0],
         responseDb: reply.response_db[0], freqs: reply.freqs_hz,
         loudnessDb: reply.loudness_gain_db[0], coefficients: reply.coefficients[0],
         label: centre ? `${term} (centre)` : seed === 0 ? term : `${term} #${seed}` },
       { status: [centre ? `${term}: its centre setting` : `${term}: variation ${seed}`,
                  ...(reply.notes || [])].join("; "),
         edited: false, group });
  return true;
}

// ------------------------------------------------------------------ the link

// The shortest decimal that reads back as the same float32 (at most 9 digits).
function float32Text(value) {
  for (let digits = 1; digits < 9; digits++) {
    const text = String(Number(value.toPrecision(digits)));
    if (Math.fround(Number(text)) === value) return text;
  }
  return String(Number(value.toPrecision(9)));
}

function linkFragment() {
  const params = new URLSearchParams({ term: state.term, strength: state.strength,
                                       seed: state.seed, centre: state.centre ? 1 : 0 });
  if (state.edited) params.set("setting", state.setting.map(float32Text).join(","));
  return "#" + params.toString().replaceAll("%2C", ",");
}

let urlTimer = null, urlWrittenAt = -Infinity;
// The URL always says what is shown. During a gesture it is rewritten at most every 100 ms
// (browsers ignore a page that rewrites it hundreds of times in a few seconds); the last
// write of a gesture always comes.
function writeUrl({ soon = false } = {}) {
  clearTimeout(urlTimer);
  const wait = soon ? urlWrittenAt + 100 - performance.now() : 0;
  if (wait > 0) {
    urlTimer = setTimeout(writeUrl, wait);
    return;
  }
  urlWrittenAt = performance.now();
  const fragment = linkFragment();
  if (location.hash !== fragment) history.replaceState(null, "", fragment);
}

const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

// A link's fragment, checked: null where it has none, else {term, strength, seed, centre,
// setting (null where it has none), settingProblem (why its setting was refused, or null)}.
// Throws, naming what was wrong and what is accepted, if the rest cannot be used.
function parseLink(fragment) {
  const params = new URLSearchParams(fragment.replace(/^#/, ""));
  if (![...params.keys()].length) return null;
  const term = (params.get("term") || "").trim(), most = state.limits.term_chars;
  if (!term) throw new Error("the link has no term (#term= a word or description)");
  if (term.length > most) {
    throw new Error(`the link's term is ${term.length} characters long; a term has 1-${most}`);
  }
  const [low, high] = state.strengthRange;
  const strengthText = params.get("strength") ?? "1";
  const strength = NUMBER_TEXT.test(strengthText) ? Number(strengthText) : NaN;
  if (!(strength >= low && strength <= high)) {
    throw new Error(`the link's strength ${JSON.stringify(strengthText.slice(0, 20))} is not a ` +
                    `number from ${low} to ${high}`);
  }
  const seedText = params.get("seed") ?? "0", centreText = params.get("centre") ?? "0";
  if (!/^\d{1,15}$/.test(seedText)) {
    throw new Error(`the link's seed ${JSON.stringify(seedText.slice(0, 20))} is not a ` +
                    "whole number >= 0");
  }
  if (centreText !== "0" && centreText !== "1") {
    throw new Error(`the link's centre ${JSON.stringify(centreText.slice(0, 20))} is not 0 or 1`);
  }
  const link = { term, strength, seed: Number(seedText), centre: centreText === "1",
                 setting: null, settingProblem: null };
  if (params.has("setting")) {
    try {
      link.setting = parseSetting(params.get("setting"));
    } catch (error) {
      link.settingProblem = error.message;
    }
  }
  return link;
}

// "g1,f1,q1,…" → the 15 numbers, each within its band's range.
function parseSetting(text) {
  const parts = text.split(","), names = state.names;
  if (parts.length !== names.length) {
    throw new Error(`the link's setting has ${parts.length} numbers; a setting is ` +
                    `${names.length} (${names.slice(0, 3).join(", ")}, … ${names.at(-1)}), ` +
                    "comma-separated");
  }
  return parts.map((part, i) => {
    const band = state.layout[Math.floor(i / 3)];
    const [low, high] = [band.gain_range, band.freq_range, band.q_range][i % 3];
    const value = NUMBER_TEXT.test(part) ? Math.fround(Number(part)) : NaN;
    if (!(value >= low && value <= high)) {
      throw new Error(`the link's ${names[i]} ${JSON.stringify(part.slice(0, 20))} is not a ` +
                      `number from ${low} to ${high}`);
    }
    return value;
  });
}

// Shows what a link's fragment describes, as far as it can: its word (which must work), then
// its setting over it (so undo goes back to the word). Returns {shown, problem}: shown, whether
// anything of the link is shown; problem, what in it was refused (null if nothing was).
async function applyLink(fragment) {
  let link;
  try {
    link = parseLink(fragment);
  } catch (error) {
    return { shown: false, problem: error.message };
  }
  if (!link) return { shown: false, problem: null };
  const source = { term: link.term, strength: link.strength, seed: link.seed, centre: link.centre };
  try {
    if (!await generate(source)) return { shown: true, problem: null }; // a newer action is shown
  } catch (error) {
    return { shown: false, problem: `the link's term was refused: ${error.message}` };
  }
  syncControls();
  if (!link.setting) return { shown: true, problem: link.settingProblem };
  try {
    const current = claimView();
    const view = await viewOf(link.setting);
    const label = `${source.term} (edited)`;
    if (current()) show({ ...view, label }, { status: `${label}: from the link`, edited: true });
    return { shown: true, problem: null };
  } catch (error) {
    return { shown: true, problem: `the link's setting was refused: ${error.message}` };
  }
}

// The link's problem as the page's error, once the page shows something that works.
function showLinkProblem(problem) {
  setStatus(`${problem.replace(/\.$/, "")}; showing '${state.label}' instead`, true);
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

function showMorphAt(morph, position, group) {
  const step = Math.round(position * (MORPH_STEPS - 1));
  state.morph = morph;
  $("morph-value").textContent = `${Math.round(100 * position)}%`;
  const label = `${morph.from}→${morph.to} ${(step / (MORPH_STEPS - 1)).toFixed(2)}`;
  show({ setting: morph.settings[step], responseDb: morph.response_db[step],
         freqs: morph.freqs_hz, loudnessDb: morph.loudness_gain_db[step],
         coefficients: morph.coefficients[step], label },
       { status: label, edited: true, group });
}

// Show from→to at the slider's position once that morph is loaded, unless a newer action
// (another pair, a word, an edit) has claimed the view meanwhile.
async function morphTo(from, to, group = null) {
  const current = claimView();
  const morph = await loadMorph(from, to);
  if (current()) showMorphAt(morph, Number($("morph-position").value), group);
}

async function onMorphInput(group = null) {
  const from = $("morph-from").value.trim(), to = $("morph-to").value.trim();
  if (!from || !to) return setStatus("give both words of the morph", true);
  await morphTo(from, to, group);
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
  const group = `map ${++gestures}`;
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
    await morphTo(from.word, nearest.word, group);
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

// The library's refusal of a file that needs fitting names its own switches (fit=True,
// convert --fit); on this page the switch is the "fit other layouts" box.
function fitHint(message) {
  const switches = ["fit=True", "--fit", '"fit": true'].map((name) => message.indexOf(name))
    .filter((at) => at >= 0);
  if (!switches.length) return message;
  const clause = message.lastIndexOf("; ", Math.min(...switches));
  const why = clause >= 0 ? message.slice(0, clause) : "it needs fitting";
  return `${why}; tick "fit other layouts" and import it again to fit the five bands to its ` +
         "response";
}

async function importPreset(file, fit) {
  let reply;
  try {
    reply = await api("/presets/import", { text: await file.text(), fit });
  } catch (error) {
    throw new Error(`${file.name}: ${fit ? error.message : fitHint(error.message)}`);
  }
  $("preset-notes").replaceChildren(...reply.notes.map((note) => {
    const item = document.createElement("li"); item.textContent = note; return item; }));
  scheduleSetting(reply.settings[0], { label: reply.names[0],
                                       status: `imported ${file.name} (${reply.format})` });
}

// ------------------------------------------------------------------ start

async function setTerm(term, { centre = false, seed = 0 } = {}) {
  $("term").value = term;
  await generate({ term, strength: state.strength, seed, centre });
}

// Start-up fills only what the user has not: they may type or drag while it runs.
async function start() {
  const fragment = location.hash; // before any input, which would otherwise replace it
  const [index, vocabulary] = await Promise.all([api(""), api("/vocabulary")]);
  Object.assign(state, { layout: index.layout, names: index.parameter_names,
                         formats: index.preset_formats, vocabulary: vocabulary.words,
                         hasMap: vocabulary.has_map, hasDescribe: vocabulary.has_describe,
                         limits: index.limits });
  // the API's strength limit, which every command shares (the slider's own max until it says)
  state.strengthRange = [0, index.limits.strength ?? Number($("strength").max)];
  Object.assign($("strength"), { min: state.strengthRange[0], max: state.strengthRange[1] });
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
  // a link that cannot be shown falls back to the first word, its problem shown as the error
  const typed = $("term").value;
  const { shown, problem } = await applyLink(fragment);
  if (!shown) {
    await generate({ term: words[0], strength: 1, seed: 0, centre: false });
    syncControls();
  }
  if (typed) $("term").value = typed;
  if (problem) showLinkProblem(problem);
  $("map-panel").hidden = !state.hasMap;
  document.documentElement.dataset.ready = "true";
  return true;
}

// Runs on an event: what the event carries is read at once, the action once started.
function onEvent(target, type, read, action) {
  $(target).addEventListener(type, (event) => {
    const value = read(event);
    whenStarted(() => action(value))();
  });
}

function bindControls() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault(); // at once: the form must not reload the page while start-up runs
    const term = $("term").value.trim();
    if (term) whenStarted(() => setTerm(term))();
  });
  let strengthGesture = 0, morphGesture = 0;
  onEvent("strength", "input", () => [Number($("strength").value), `strength ${strengthGesture}`],
          ([strength, group]) => {
            $("strength-value").textContent = strength.toFixed(2);
            return generate({ term: state.term, strength, seed: state.seed, centre: state.centre },
                            { group });
          });
  $("strength").addEventListener("change", () => { strengthGesture += 1; });
  $("centre").addEventListener("click", whenStarted(() => setTerm(state.term, { centre: true })));
  $("reroll").addEventListener("click", whenStarted(() => setTerm(state.term,
    { centre: false, seed: state.centre ? 1 : state.seed + 1 })));
  onEvent("morph-position", "input", () => `morph ${morphGesture}`, onMorphInput);
  $("morph-position").addEventListener("change", () => { morphGesture += 1; });
  for (const id of ["morph-from", "morph-to"]) onEvent(id, "change", () => null, onMorphInput);
  $("undo").addEventListener("click", whenStarted(() => undoStep(true)));
  $("redo").addEventListener("click", whenStarted(() => undoStep(false)));
  document.addEventListener("keydown", (event) => {
    const key = event.key.toLowerCase();
    if (!(event.ctrlKey || event.metaKey) || event.altKey || (key !== "z" && key !== "y")) return;
    if (event.target.matches("input:not([type]), input[type=text], textarea")) return; // its own
    event.preventDefault();
    whenStarted(() => undoStep(key === "z" && !event.shiftKey))();
  });
  window.addEventListener("hashchange", whenStarted(async () => { // a link pasted into this tab
    const { shown, problem } = await applyLink(location.hash);
    if (!shown) writeUrl(); // the URL says what is still shown
    if (problem) showLinkProblem(problem);
  }));
  $("audio-file").addEventListener("change", guarded(async () => {
    if ($("audio-file").files[0]) await audioEngine.load($("audio-file").files[0]);
  }));
  $("play").addEventListener("click", whenStarted(() => audioEngine.play()));
  for (const id of ["bypass", "match"]) $(id).addEventListener("change", () => audioEngine.update());
  // the input is emptied at once, so that picking the same file again imports it again
  onEvent("preset-file", "change", () => {
    const picked = [$("preset-file").files[0], $("fit").checked];
    $("preset-file").value = "";
    return picked;
  }, ([file, fit]) => file && importPreset(file, fit));
}

bindControls();
started = start();
// ready: resolves true once the page has its words, map and first setting (the <html>
// element then carries data-ready="true"); rejects with the reason if start-up failed.
const ready = started.then(() => true);
ready.catch((error) => setStatus(error.message, true));
window.neuraleq = { state, api, audio: audioEngine, lastExport: null, ready };
