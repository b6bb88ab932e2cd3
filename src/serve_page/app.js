// The demo page of src/serve.py: a drawing or a photo goes to POST /predict as an image file;
// its answer (or the one line that says why there is none) is shown. Nothing is loaded from
// anywhere but this server.
"use strict";

const canvas = document.getElementById("canvas");
const pen = canvas.getContext("2d");
const byId = (id) => document.getElementById(id);
let classes = [];
let drawing = false;
let answers = 0; // body's data-answers: how many answers are on screen so far (for tests)

function clearCanvas() {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  pen.lineWidth = 20; // about a pen's stroke on a digit that fills the canvas, as in MNIST
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.strokeStyle = "#000";
}

function canvasPoint(event) {
  const box = canvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * canvas.width) / box.width,
    ((event.clientY - box.top) * canvas.height) / box.height,
  ];
}

canvas.addEventListener("pointerdown", (event) => {
  drawing = true;
  canvas.setPointerCapture(event.pointerId);
  const [x, y] = canvasPoint(event);
  pen.beginPath();
  pen.moveTo(x, y);
  pen.lineTo(x, y); // a tap leaves a dot
  pen.stroke();
});

canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = canvasPoint(event);
  pen.lineTo(x, y);
  pen.stroke();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  const started = performance.now();
  canvas.toBlob((png) => ask(png, started), "image/png");
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

byId("clear").addEventListener("click", () => {
  clearCanvas();
  showNothing("Draw a digit to see what the network answers.");
});

byId("file").addEventListener("change", (event) => {
  if (event.target.files.length) askAboutFile(event.target.files[0]);
  event.target.value = ""; // the same file again is a new choice
});

// A photo dropped anywhere on the page.
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  if (event.dataTransfer.files.length) askAboutFile(event.dataTransfer.files[0]);
});

async function askAboutFile(file) {
  const started = performance.now();
  await showOnCanvas(file);
  ask(file, started);
}

// The photo in the canvas, fitted, so that the person sees what was sent (strokes drawn next
// go over it). A file the browser cannot show is still sent: the server says what is wrong.
async function showOnCanvas(file) {
  try {
    const image = await createImageBitmap(file);
    clearCanvas();
    const scale = Math.min(canvas.width / image.width, canvas.height / image.height);
    const width = image.width * scale;
    const height = image.height * scale;
    pen.drawImage(image, (canvas.width - width) / 2, (canvas.height - height) / 2, width, height);
  } catch {
    // not an image the browser can decode
  }
}

async function ask(imageFile, started) {
  let response;
  let answer;
  try {
    response = await fetch("/predict", { method: "POST", body: imageFile });
    answer = await response.json();
  } catch {
    showError("no answer from the server: is `python -m src.serve` still running?");
    return;
  }
  if (!response.ok) {
    showError(answer.error);
    return;
  }
  show(answer);
  // Timed once the answer is on screen: the next frame is drawn with it.
  requestAnimationFrame(() => {
    const milliseconds = performance.now() - started;
    byId("timing").textContent = `answered in ${Math.round(milliseconds)} ms`;
    byId("timing").dataset.milliseconds = milliseconds.toFixed(1);
    document.body.dataset.answers = String(++answers);
  });
}

function show(answer) {
  byId("error").hidden = true;
  document.body.classList.remove("stale");
  const best = classes.indexOf(answer.class);
  byId("prediction").textContent = answer.class;
  byId("confidence").textContent =
    `${percent(answer.probabilities[best])} sure` + (answer.votes.length > 1 ? " (the members' mean)" : "");
  showBars(answer.probabilities, best);
  byId("received").src = answer.received;
  showVotes(answer.votes);
  showMaps(answer.feature_maps, answer.votes.length > 1 ? answer.feature_maps_of : "");
}

function showBars(probabilities, best) {
  const bars = byId("bars");
  bars.replaceChildren();
  probabilities.forEach((probability, index) => {
    const bar = element("div", index === best ? "bar best" : "bar");
    bar.dataset.probability = String(probability);
    const fill = element("div", "fill");
    fill.style.width = `${(100 * probability).toFixed(2)}%`;
    const track = element("div", "track");
    track.append(fill);
    bar.append(element("span", "label", classes[index]), track, element("span", "value", percent(probability)));
    bars.append(bar);
  });
}

function showVotes(votes) {
  byId("votes-box").hidden = votes.length < 2; // one network: its vote is the answer
  const rows = votes.map((vote) => {
    const row = element("tr");
    row.append(element("td", "", vote.member), element("td", "class", vote.class), element("td", "", percent(vote.probability)));
    return row;
  });
  byId("votes").replaceChildren(...rows);
}

function showMaps(featureMaps, member) {
  const maps = byId("maps");
  if (!featureMaps) {
    byId("maps-title").textContent = "First convolution's feature maps";
    maps.replaceChildren(element("p", "none", "This network has no convolution (an MLP)."));
    return;
  }
  const whose = member ? ` of ${member}` : "";
  byId("maps-title").textContent = `First convolution's feature maps${whose} (${featureMaps.layer}; each map from its lowest value, black, to its highest, white)`;
  maps.replaceChildren(
    ...featureMaps.maps.map((source, index) => {
      const image = element("img");
      image.src = source;
      image.alt = image.title = `map ${index}`;
      return image;
    }),
  );
}

function showError(message) {
  byId("error").textContent = message;
  byId("error").hidden = false;
  document.body.classList.add("stale");
  document.body.dataset.errors = String(Number(document.body.dataset.errors || 0) + 1);
}

function showNothing(message) {
  byId("error").hidden = true;
  document.body.classList.add("stale"); // the last answer's input and maps, faded
  byId("prediction").textContent = "?";
  byId("confidence").textContent = message;
  byId("timing").textContent = "";
  byId("bars").replaceChildren();
}

function element(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function percent(probability) {
  return `${(100 * probability).toFixed(probability > 0.999 || probability < 0.001 ? 2 : 1)}%`;
}

async function start() {
  clearCanvas();
  const model = await (await fetch("/model")).json();
  classes = model.classes;
  const members = model.members;
  byId("model").textContent =
    members.length === 1 ? `network: ${members[0]}` : `an ensemble of ${members.length}: ${members.join(", ")}`;
  document.body.dataset.ready = "true";
}

start();
