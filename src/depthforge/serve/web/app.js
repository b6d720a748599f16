// depthforge page: upload a photo, show its depth, read metres under the mouse. No build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { result: null, hover: null };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function fmt(v, units) {
  return units === "m" ? `${v.toFixed(2)} m` : `${v.toFixed(3)} (relative)`;
}

async function upload(file) {
  if (!file) return;
  setStatus(`Predicting depth for ${file.name} …`);
  const form = new FormData();
  form.append("file", file, file.name);
  let response, body;
  try {
    response = await fetch("/api/predict", { method: "POST", body: form });
    body = await response.json();
  } catch (err) {
    setStatus(`The server did not answer (${err}).`, true);
    return;
  }
  if (!response.ok) {
    setStatus(body.detail || `Error ${response.status}`, true);
    return;
  }
  await show(body);
}

async function show(r) {
  state.result = r;
  state.hover = null;
  const hover = await fetch(r.urls["hover.f32"]);
  if (hover.ok) state.hover = new Float32Array(await hover.arrayBuffer());
  const loaded = (img) => new Promise((ok) => { img.onload = ok; img.onerror = ok; });
  const done = Promise.all([loaded($("photo")), loaded($("depth"))]);
  $("photo").src = r.urls["image.jpg"];
  $("depth").src = r.urls["color.png"];
  $("dl-png").href = r.urls["depth.png"];
  $("dl-png").textContent = `depth PNG (${r.depth_png.label})`;  // millimetres, or m × 256 for far-range models
  $("dl-npy").href = r.urls["depth.npy"];
  $("dl-ply").href = r.urls["cloud.ply"];
  $("dl-color").href = r.urls["color.png"];
  const stops = r.legend.map(([, colour], i) => `${colour} ${(100 * i / (r.legend.length - 1)).toFixed(1)}%`);
  $("legend").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  $("legend-near").textContent = `${fmt(r.vmin, r.units)} (near)`;
  $("legend-far").textContent = `${fmt(r.vmax, r.units)} (far)`;
  $("summary").textContent = `${r.name}: ${r.width}×${r.height} px, depth ${fmt(r.min, r.units)} – ` +
    `${fmt(r.max, r.units)}, ${r.points.toLocaleString()} points in the cloud (${r.intrinsics}), ` +
    `${(r.seconds * 1000).toFixed(0)} ms`;
  $("readout").textContent = "move the mouse over a picture";
  $("result").hidden = false;
  await done;
  setStatus(`Done: ${r.name}`);
  document.body.dataset.ready = r.id;  // lets tests and scripts wait for a finished prediction
}

function onMove(event) {
  const r = state.result;
  if (!r || !state.hover) return;
  const rect = event.currentTarget.getBoundingClientRect();
  const fx = (event.clientX - rect.left) / rect.width, fy = (event.clientY - rect.top) / rect.height;
  if (fx < 0 || fx >= 1 || fy < 0 || fy >= 1) return;
  const x = Math.floor(fx * r.width), y = Math.floor(fy * r.height);
  const hx = Math.min(Math.floor(x / r.hover.step), r.hover.width - 1);
  const hy = Math.min(Math.floor(y / r.hover.step), r.hover.height - 1);
  const v = state.hover[hy * r.hover.width + hx];
  const out = $("readout");
  out.dataset.x = x; out.dataset.y = y; out.dataset.value = v;
  out.innerHTML = v > 0 && Number.isFinite(v)
    ? `<b>${fmt(v, r.units)}</b> at pixel (${x}, ${y})` : `no depth at pixel (${x}, ${y})`;
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
const drop = $("upload");
drop.addEventListener("submit", (e) => e.preventDefault());
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  upload(e.dataTransfer.files[0]);
});

// The service's limits, stated where the photo is chosen.
fetch("/health").then((r) => r.json()).then((h) => {
  const m = h.served;
  const size = m.input_size ? `${m.input_size[0]}×${m.input_size[1]}` : "any size";
  $("model").textContent = `Model: ${m.model}` + (m.source ? ` (${m.source})` : "") +
    ` · trained on ${m.trained_on} · input ${size} · ` +
    (m.output === "metric" ? "metric depth in metres" : `${m.output} output (relative, not metres)`);
  const l = h.limits;
  $("limits").textContent = `up to ${l.upload_mb} MB and ${l.max_megapixels} MP; photos above ` +
    `${l.work_megapixels} MP are scaled down to it before prediction`;
}).catch(() => {});
