/* gptbuilder widget loader: <script src="https://HOST/widget.js" data-gpt="ID" async></script>
   Asks the server for a session (allowed only from the GPT's widget.allowed_origins), then shows a
   launcher bubble that opens the chat in an iframe. No third-party assets, no API keys. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var gpt = script.getAttribute("data-gpt") || "";
  if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(gpt)) {
    console.warn("gptbuilder widget: data-gpt must be a GPT id");
    return;
  }
  var base = new URL(script.src, location.href).origin;

  fetch(base + "/widget/" + gpt + "/session", { method: "POST", mode: "cors", credentials: "omit" })
    .then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(mount)
    .catch(function (error) {
      console.warn("gptbuilder widget unavailable for this page:", error.message);
    });

  function bubbleIcon() {
    // Drawn here rather than an emoji: not every system has an emoji font.
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }

  function mount(session) {
    var config = session.config || {};
    var color = /^#[0-9a-fA-F]{6}$/.test(config.color || "") ? config.color : "#2563eb";
    var left = config.position === "bottom-left";

    var button = document.createElement("button");
    button.type = "button";
    button.id = "gptbuilder-launcher";
    button.setAttribute("aria-label", "Open chat: " + (config.title || "assistant"));
    button.setAttribute("aria-expanded", "false");
    if (config.avatar) {
      button.textContent = config.avatar;
    } else {
      button.appendChild(bubbleIcon());
    }
    var bs = button.style;
    bs.position = "fixed"; bs.bottom = "20px"; bs[left ? "left" : "right"] = "20px";
    bs.width = "56px"; bs.height = "56px"; bs.borderRadius = "50%"; bs.border = "none";
    bs.background = color; bs.color = "#fff"; bs.fontSize = "26px"; bs.cursor = "pointer";
    bs.boxShadow = "0 4px 14px rgba(0,0,0,.25)"; bs.zIndex = "2147483646";
    bs.display = "flex"; bs.alignItems = "center"; bs.justifyContent = "center"; bs.padding = "0";

    var frame = document.createElement("iframe");
    frame.id = "gptbuilder-frame";
    frame.title = config.title || "Chat";
    // The token travels in the fragment: never sent to the server in a URL or a Referer.
    frame.src = base + "/widget/" + gpt + "#" + encodeURIComponent(session.token);
    frame.setAttribute("allow", "clipboard-write");
    var fs = frame.style;
    fs.position = "fixed"; fs.bottom = "88px"; fs[left ? "left" : "right"] = "20px";
    fs.width = "min(380px, calc(100vw - 40px))"; fs.height = "min(600px, calc(100vh - 120px))";
    fs.border = "none"; fs.borderRadius = "14px"; fs.boxShadow = "0 8px 30px rgba(0,0,0,.25)";
    fs.background = "#fff"; fs.zIndex = "2147483647"; fs.display = "none";

    function toggle(open) {
      fs.display = open ? "block" : "none";
      button.setAttribute("aria-expanded", open ? "true" : "false");
      button.setAttribute("aria-label", (open ? "Close chat: " : "Open chat: ") + (config.title || "assistant"));
    }
    button.addEventListener("click", function () {
      toggle(fs.display === "none");
    });
    document.body.appendChild(frame);
    document.body.appendChild(button);
    if (config.open_on_load) toggle(true);
  }
})();
