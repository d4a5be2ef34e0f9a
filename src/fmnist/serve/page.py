"""The page at ``GET /``: pick or drop a picture, see the 28x28 image the model received, the class and
the top 3. One static HTML file with its style and script inline, allowed by their hashes in the
Content-Security-Policy (nothing else runs); the answer is inserted as text, never as HTML."""

from __future__ import annotations

import base64
import hashlib

STYLE = """
body { font: 16px/1.4 system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
main { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
#drop { display: block; border: 2px dashed #888; border-radius: 8px; padding: 2rem; text-align: center;
        cursor: pointer; background: #fff; }
#drop.over { border-color: #1a6; background: #eefaf2; }
#file { display: block; margin: 1rem auto 0; }
#result { display: flex; gap: 1.5rem; align-items: flex-start; margin-top: 1.5rem; flex-wrap: wrap; }
#result[hidden] { display: none; }
figure { margin: 0; text-align: center; font-size: .85rem; color: #555; }
#picture { max-width: 168px; max-height: 168px; display: block; }
#seen { width: 168px; height: 168px; image-rendering: pixelated; display: block; background: #000; }
#class { font-size: 1.4rem; font-weight: 600; margin: 0 0 .5rem; }
#top3 { margin: 0; padding-left: 1.2rem; }
#top3 li { margin: .2rem 0; }
.bar { display: inline-block; height: .7rem; background: #1a6; margin-left: .5rem; vertical-align: middle; }
#warning { color: #a50; }
#error { color: #b00; font-weight: 600; }
"""

SCRIPT = """
const limit = MAX_BODY_BYTES;
const $ = (id) => document.getElementById(id);
function say(id, text) { $(id).textContent = text; }
function draw(pixels) {
  const context = $("seen").getContext("2d"), image = context.createImageData(28, 28);
  pixels.flat().forEach((value, i) => {
    image.data.set([value, value, value, 255], 4 * i);
  });
  context.putImageData(image, 0, 0);
}
async function classify(file) {
  say("error", ""); say("warning", "");
  if (!file) return;
  document.body.dataset.state = "busy";
  if (file.size > limit) {
    say("error", `${file.name}: ${file.size.toLocaleString()} bytes; the limit is ${limit.toLocaleString()}`);
    document.body.dataset.state = "error";
    return;
  }
  say("status", `classifying ${file.name}…`);
  const body = new FormData();
  body.append("file", file, file.name);
  let response, answer;
  try {
    response = await fetch("predict?pixels=1", { method: "POST", body });
    answer = await response.json();
  } catch (failure) {
    say("error", `no answer from the service (${failure})`); say("status", "");
    document.body.dataset.state = "error";
    return;
  }
  if (!response.ok) {
    $("result").hidden = true;
    say("error", answer.error || `error ${response.status}`); say("status", "");
    document.body.dataset.state = "error";
    return;
  }
  const result = answer[0];
  $("picture").src = URL.createObjectURL(file);
  draw(result.pixels);
  say("class", `${result.class_name} (${(100 * result.probability).toFixed(1)}%)`);
  $("top3").replaceChildren(...result.top3.map((entry) => {
    const item = document.createElement("li"), bar = document.createElement("span");
    item.textContent = `${entry.class_name} ${(100 * entry.probability).toFixed(1)}%`;
    bar.className = "bar";
    bar.style.width = `${Math.round(120 * entry.probability)}px`;
    item.append(bar);
    return item;
  }));
  say("warning", result.warning ? `warning: ${result.warning}` : "");
  say("status", `${file.name}: done`);
  $("result").hidden = false;
  document.body.dataset.state = "done";
}
$("file").addEventListener("change", () => classify($("file").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault(); drop.classList.remove("over");
  classify(event.dataTransfer.files[0]);
});
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fmnist: what is this garment?</title>
<style>{style}</style>
</head>
<body data-state="ready">
<main>
<h1>What is this garment?</h1>
<p>A Fashion-MNIST classifier. Give it a PNG or JPEG picture of one item of clothing, shoe or bag on a
plain background; it is converted the way the dataset's pictures were (trimmed, grey, light on black,
28&times;28), and you see what the model saw.</p>
<label id="drop" for="file">Drop a picture here, or choose one
<input id="file" type="file" accept="image/png,image/jpeg"></label>
<p id="error" role="alert"></p>
<p id="status" aria-live="polite"></p>
<section id="result" hidden>
<figure><img id="picture" alt="your picture"><figcaption>your picture</figcaption></figure>
<figure><canvas id="seen" width="28" height="28"></canvas><figcaption>what the model saw (28&times;28)</figcaption></figure>
<div><p id="class"></p><ol id="top3"></ol><p id="warning"></p></div>
</section>
</main>
<script>{script}</script>
</body>
</html>
"""


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_and_policy(max_body_bytes: int) -> tuple[str, str]:
    """The page's HTML and the Content-Security-Policy that lets only its own style and script run."""
    script = SCRIPT.replace("MAX_BODY_BYTES", str(int(max_body_bytes)))
    policy = (f"default-src 'none'; script-src {_digest(script)}; style-src {_digest(STYLE)}; img-src blob:; "
              "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
    return PAGE.format(style=STYLE, script=script), policy
