// depthforge page: one or two models on a photo, their depths on one scale, the difference, metres under the
// mouse, a 3-D view (plotly, served by this server) and depth for a short video. No build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { result: null, hover: null, hoverB: null, health: null };

function setStatus(text, isError = false, id = "status") {
  $(id).textContent = text;
  $(id).classList.toggle("error", isError);
}

function fmt(v, units) {
  return units === "m" ? `${v.toFixed(2)} m` : `${v.toFixed(3)} (relative)`;
}

// An answer's message: a 503 says when to try again.
function failure(response, body) {
  if (response.status === 503) {
    const wait = response.headers.get("Retry-After") || "a few";
    return `The server is busy, try again in ${wait} s.`;
  }
  return (body && body.detail) || `Error ${response.status}`;
}

async function call(url, options) {
  let response, body;
  try {
    response = await fetch(url, options);
    body = await response.json();
  } catch (err) {
    return { error: `The server did not answer (${err}).` };
  }
  return response.ok ? { body } : { error: failure(response, body) };
}

async function upload(file) {
  if (!file) return;
  state.file = file;  // a change of model or field of view predicts it again
  const turn = state.turn = (state.turn || 0) + 1;  // only the latest request's answer is shown
  const a = $("model-a").value, b = $("model-b").value;
  const models = b && b !== a ? `${a},${b}` : a;
  setStatus(`Predicting depth for ${file.name} with ${models.replace(",", " and ")} …`);
  const form = new FormData();
  form.append("file", file, file.name);
  const params = new URLSearchParams({ models });
  if ($("fov").value) params.set("fov", $("fov").value);
  const { body, error } = await call(`/api/predict?${params}`, { method: "POST", body: form });
  if (turn !== state.turn) return;
  if (error) { setStatus(error, true); return; }
  await show(body);
  refreshHealth();
}

async function floats(url) {
  const r = await fetch(url);
  return r.ok ? new Float32Array(await r.arrayBuffer()) : null;
}

async function show(r) {
  const two = Boolean(r.second);
  state.result = r;
  [state.hover, state.hoverB] = await Promise.all([floats(r.urls["hover.f32"]),
    two ? floats(r.second.urls["hover.f32"]) : null]);
  document.body.classList.toggle("compare", two);
  const loaded = (img) => new Promise((ok) => { img.onload = ok; img.onerror = ok; });
  const imgs = two ? ["photo", "depth", "depth-b", "diff"] : ["photo", "depth"];
  const done = Promise.all(imgs.map((id) => loaded($(id))));
  $("photo").src = r.urls["image.jpg"];
  $("depth").src = r.urls["color.png"];
  $("cap-a").textContent = `${r.model} — near is bright`;
  $("dl-png").href = r.urls["depth.png"];
  $("dl-png").textContent = `depth PNG (${r.depth_png.label})`;  // millimetres, or m × 256 for far-range models
  $("dl-npy").href = r.urls["depth.npy"];
  $("dl-ply").href = r.urls["cloud.ply"];
  $("dl-color").href = r.urls["color.png"];
  const stops = r.legend.map(([, colour], i) => `${colour} ${(100 * i / (r.legend.length - 1)).toFixed(1)}%`);
  $("legend").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  $("legend-near").textContent = `${fmt(r.vmin, r.units)} (near)`;
  $("legend-far").textContent = `${fmt(r.vmax, r.units)} (far)`;
  if (two) {
    const c = r.compare;
    $("depth-b").src = r.second.urls["color.png"];
    $("diff").src = c.urls["diff.png"];
    $("cap-b").textContent = `${r.second.model} — same colour scale`;
    $("cap-diff").textContent = `difference (${r.second.model} − ${r.model}) / ${r.model}: red = ` +
      `${r.second.model} nearer, blue = farther, white = equal; full colour at ±${(100 * c.diff_limit).toFixed(0)}%`;
    $("c-median").textContent = c.median_rel_diff === null ? "—" : `${(100 * c.median_rel_diff).toFixed(1)}%`;
    $("c-order").textContent = c.order_disagreement === null ? "—" : `${(100 * c.order_disagreement).toFixed(1)}%`;
    $("c-how").textContent = `|${r.second.model} − ${r.model}| / ${r.model} over ${c.pixels.toLocaleString()} ` +
      `pixels; ${c.pairs.toLocaleString()} pixel pairs drawn with a fixed seed` + (c.aligned ? `; ${c.aligned}` : "");
    $("scale").textContent = c.scale;
  } else {
    $("scale").textContent = "";
  }
  const unloaded = [...(r.unloaded || []), ...((r.second && r.second.unloaded) || [])];
  $("summary").textContent = `${r.name}: ${r.width}×${r.height} px, depth ${fmt(r.min, r.units)} – ` +
    `${fmt(r.max, r.units)}, ${r.points.toLocaleString()} points in the cloud (${r.intrinsics}), ` +
    `${(r.seconds * 1000).toFixed(0)} ms` +
    (unloaded.length ? `; unloaded ${unloaded.join(", ")} to stay within the memory budget` : "");
  $("readout").textContent = "move the mouse over a picture";
  $("result").hidden = false;
  await done;
  setStatus(`Done: ${r.name}`);
  document.body.dataset.ready = r.id;  // lets tests and scripts wait for a finished prediction
  await Promise.all([view("view-a", "vcap-a", r), two ? view("view-b", "vcap-b", r.second) : null]);
  document.body.dataset.views = r.id;  // the 3-D views are drawn
}

// The 3-D view: the points the server sampled (x right, y down, z forward), drawn as seen from the camera.
async function view(id, caption, r) {
  const el = $(id);
  if (typeof Plotly === "undefined") { el.textContent = "the 3-D viewer did not load"; return; }
  const buf = await (await fetch(r.urls["points.bin"])).arrayBuffer();
  const n = new Uint32Array(buf, 0, 1)[0];
  const xyz = new Float32Array(buf, 4, 3 * n), rgb = new Uint8Array(buf, 4 + 12 * n, 3 * n);
  const x = new Array(n), y = new Array(n), z = new Array(n), colour = new Array(n);
  for (let i = 0; i < n; i++) {
    // plotly's z is up: forward depth goes along y, the image's down along -z
    x[i] = xyz[3 * i]; y[i] = xyz[3 * i + 2]; z[i] = -xyz[3 * i + 1];
    colour[i] = `rgb(${rgb[3 * i]},${rgb[3 * i + 1]},${rgb[3 * i + 2]})`;
  }
  const trace = { type: "scatter3d", mode: "markers", x, y, z, hoverinfo: "skip",
    marker: { size: 2.5, color: colour } };
  const axis = (title) => ({ title: { text: title }, color: "#9a9cab", gridcolor: "#2a2f3c", zerolinecolor: "#394052" });
  // true proportions with the longest side 1: plotly's "data" mode scales the box to unit volume, which puts
  // the camera inside a thin cloud (a wall seen straight on)
  const span = (v) => { let lo = Infinity, hi = -Infinity; for (const t of v) { if (t < lo) lo = t; if (t > hi) hi = t; }
    return Math.max(hi - lo, 1e-6); };
  const sx = span(x), sy = span(y), sz = span(z), longest = Math.max(sx, sy, sz);
  const layout = { margin: { l: 0, r: 0, t: 0, b: 0 }, paper_bgcolor: "#1b1e26", showlegend: false,
    scene: { aspectmode: "manual", aspectratio: { x: sx / longest, y: sy / longest, z: sz / longest }, xaxis: axis("x (m)"), yaxis: axis("depth (m)"), zaxis: axis("up (m)"),
      camera: { eye: { x: 0.9, y: -1.5, z: 0.6 }, up: { x: 0, y: 0, z: 1 } } } };  // oblique: bends show
  await Plotly.react(el, [trace], layout, { responsive: true, displaylogo: false });
  $(caption).textContent = `${r.model}: ${n.toLocaleString()} points (of the photo's pixels, evenly spaced); ` +
    `camera ${r.intrinsics}`;
}

function onMove(event) {
  const r = state.result;
  if (!r || !state.hover) return;
  const rect = event.currentTarget.getBoundingClientRect();
  const fx = (event.clientX - rect.left) / rect.width, fy = (event.clientY - rect.top) / rect.height;
  if (fx < 0 || fx >= 1 || fy < 0 || fy >= 1) return;
  const x = Math.floor(fx * r.width), y = Math.floor(fy * r.height);
  const read = (res, hover) => {
    const hx = Math.min(Math.floor(x / res.hover.step), res.hover.width - 1);
    const hy = Math.min(Math.floor(y / res.hover.step), res.hover.height - 1);
    return hover[hy * res.hover.width + hx];
  };
  const say = (v, units) => (v > 0 && Number.isFinite(v) ? `<b>${fmt(v, units)}</b>` : "no depth");
  const v = read(r, state.hover);
  const out = $("readout");
  out.dataset.x = x; out.dataset.y = y; out.dataset.value = v;
  if (r.second && state.hoverB) {
    const vb = read(r.second, state.hoverB);
    out.dataset.valueB = vb;
    out.innerHTML = `${r.model}: ${say(v, r.units)} · ${r.second.model}: ${say(vb, r.second.units)} ` +
      `at pixel (${x}, ${y})`;
  } else {
    out.innerHTML = v > 0 && Number.isFinite(v)
      ? `<b>${fmt(v, r.units)}</b> at pixel (${x}, ${y})` : `no depth at pixel (${x}, ${y})`;
  }
  for (const mark of document.querySelectorAll(".mark")) {
    mark.style.display = "block";
    mark.style.left = `${fx * 100}%`;
    mark.style.top = `${fy * 100}%`;
  }
}

for (const frame of document.querySelectorAll(".frame")) {
  frame.addEventListener("mousemove", onMove);
  frame.addEventListener("mouseleave", () => {
    for (const mark of document.querySelectorAll(".mark")) mark.style.display = "none";
  });
}

$("file").addEventListener("change", (e) => upload(e.target.files[0]));
for (const id of ["model-a", "model-b", "fov"]) $(id).addEventListener("change", () => upload(state.file));
const drop = $("upload");
drop.addEventListener("submit", (e) => e.preventDefault());
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  upload(e.dataTransfer.files[0]);
});

// Video: upload, then poll the job until the depth video is ready.
async function uploadVideo(file) {
  if (!file) return;
  $("video-out").hidden = true;
  setStatus(`Uploading ${file.name} …`, false, "video-status");
  const form = new FormData();
  form.append("file", file, file.name);
  const params = new URLSearchParams({ model: $("model-a").value });
  const { body, error } = await call(`/api/video?${params}`, { method: "POST", body: form });
  if (error) { setStatus(error, true, "video-status"); return; }
  for (;;) {
    const { body: job, error: lost } = await call(`/api/job/${body.job}`);
    if (lost) { setStatus(lost, true, "video-status"); return; }
    if (job.state === "failed") { setStatus(job.error, true, "video-status"); return; }
    if (job.state === "done") {
      const out = $("video-out");
      out.src = job.url;
      out.hidden = false;
      out.play().catch(() => {});
      setStatus(`Done: ${file.name}, ${job.frames} frames with ${job.model} (left the clip, right its depth)`,
        false, "video-status");
      document.body.dataset.video = body.job;
      return;
    }
    setStatus(`Depth for ${file.name}: ${job.frames} of ${job.total} frames …`, false, "video-status");
    await new Promise((ok) => setTimeout(ok, 300));
  }
}
$("video").addEventListener("change", (e) => uploadVideo(e.target.files[0]));
$("video-form").addEventListener("submit", (e) => e.preventDefault());

// The served models and the service's limits, stated where the photo is chosen.
function refreshHealth() {
  return fetch("/health").then((r) => r.json()).then((h) => {
    state.health = h;
    const m = h.served;
    if (m) {
      const size = m.input_size ? `${m.input_size[0]}×${m.input_size[1]}` : "any size";
      $("model").textContent = `Model: ${m.model}` + (m.source ? ` (${m.source})` : "") +
        ` · trained on ${m.trained_on} · input ${size} · ` +
        (m.output === "metric" ? "metric depth in metres" : `${m.output} output (relative, not metres)`);
    }
    const l = h.limits;
    $("limits").textContent = `up to ${l.upload_mb} MB and ${l.max_megapixels} MP; photos above ` +
      `${l.work_megapixels} MP are scaled down to it before prediction; ${l.workers} at a time, ${l.queue} ` +
      `waiting; results kept ${l.retention_s} s; without a field of view the model's own camera estimate or ` +
      `${l.default_fov}° is used`;
    const v = l.video;
    $("video-limits").textContent = `up to ${v.mb} MB, ${v.seconds} s and ${v.frames} frames; the result is ` +
      "the clip beside its depth";
    const budget = h.memory_budget;
    const limit = budget.models !== undefined ? `${budget.models} models` : `${budget.mb} MB`;
    $("served").textContent = "served: " + h.models.map((m) => `${m.name} (${m.loaded ? "loaded" : "not loaded"})`)
      .join(", ") + `; at most ${limit} kept loaded, the least recently used unloaded beyond` +
      (budget.unloaded_recently.length ? ` (recently unloaded: ${budget.unloaded_recently.join(", ")})` : "");
    for (const id of ["model-a", "model-b"]) {
      const select = $(id), keep = select.value;
      for (const option of [...select.options]) if (option.value) option.remove();
      for (const m of h.models) select.add(new Option(m.name, m.name));
      select.value = keep || (id === "model-a" ? h.default : "");
    }
  }).catch(() => {});
}
refreshHealth();
