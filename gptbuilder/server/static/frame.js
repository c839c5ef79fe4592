/* gptbuilder widget chat page (inside the iframe). Answers arrive as HTML the server sanitized with
   nh3; everything else (the visitor's text, sources, errors) is inserted as plain text. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("gptbuilder-config").textContent);
  var token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname);
  var endpoint = location.pathname.replace(/\/$/, "") + "/messages";

  var root = document.documentElement;
  if (config.theme && config.theme !== "auto") root.setAttribute("data-theme", config.theme);
  if (config.color) root.style.setProperty("--accent", config.color);

  var chat = document.getElementById("chat");
  var header = el("header", "head");
  if (config.avatar) header.appendChild(el("span", "avatar", config.avatar));
  header.appendChild(el("h1", "title", config.title || "Chat"));
  var log = el("section", "log");
  log.setAttribute("role", "log");
  var starters = el("div", "starters");
  var form = el("form", "composer");
  var input = el("textarea", "input");
  input.rows = 1;
  input.placeholder = config.placeholder || "Type a message…";
  input.setAttribute("aria-label", "Message");
  var send = el("button", "send", "Send");
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);
  chat.appendChild(header);
  chat.appendChild(log);
  chat.appendChild(starters);
  chat.appendChild(form);

  if (!token) {
    bubble("error", "This chat must be opened from its website.");
    form.hidden = true;
    return;
  }
  if (config.greeting) bubble("assistant", config.greeting);
  (config.starters || []).forEach(function (text) {
    var b = el("button", "starter", text);
    b.type = "button";
    b.addEventListener("click", function () { ask(text); });
    starters.appendChild(b);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    ask(input.value);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      ask(input.value);
    }
  });

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function bubble(role, text) {
    var node = el("div", "msg " + role, text);
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
    return node;
  }

  function busy(on) {
    send.disabled = on;
    input.disabled = on;
  }

  function ask(text) {
    text = (text || "").trim();
    if (!text || send.disabled) return;
    input.value = "";
    starters.hidden = true;
    bubble("user", text);
    var answer = bubble("assistant pending", "…");
    busy(true);
    fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
      body: JSON.stringify({ message: text })
    })
      .then(function (response) {
        if (!response.ok) {
          return response.json().then(function (body) {
            throw new Error((body.error && body.error.message) || "HTTP " + response.status);
          }, function () { throw new Error("HTTP " + response.status); });
        }
        return read(response.body.getReader(), answer);
      })
      .catch(function (error) {
        answer.className = "msg error";
        answer.textContent = error.message;
      })
      .then(function () {
        busy(false);
        input.focus();
      });
  }

  function read(reader, answer) {
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (part) {
        if (part.done) return;
        buffer += decoder.decode(part.value, { stream: true }).replace(/\r\n/g, "\n");
        var events = buffer.split("\n\n");
        buffer = events.pop();
        events.forEach(function (block) {
          var data = block.split("\n").filter(function (line) { return line.indexOf("data:") === 0; })
            .map(function (line) { return line.slice(5).replace(/^ /, ""); }).join("\n");
          if (data) handle(JSON.parse(data), answer);
        });
        return pump();
      });
    }
    return pump();
  }

  function handle(event, answer) {
    if (event.type === "delta" || event.type === "done") {
      var body = answer.querySelector(".body");
      if (!body) {
        answer.textContent = "";
        body = answer.appendChild(el("div", "body"));
      }
      answer.className = "msg assistant";
      body.innerHTML = event.html;  // sanitized by the server (nh3): no scripts, handlers or images
    } else if (event.type === "citations") {
      var list = el("ol", "sources");
      list.setAttribute("aria-label", "Sources");
      event.citations.forEach(function (c) {
        var item = el("li", c.cited ? "source cited" : "source", c.source);
        item.value = c.number;
        item.title = c.text;
        list.appendChild(item);
      });
      answer.appendChild(list);
    } else if (event.type === "curated") {
      answer.setAttribute("data-curated", "true");
      answer.title = "A curated answer from the GPT's author";
    } else if (event.type === "error") {
      answer.appendChild(el("p", "msg-error", event.message));
      answer.className = "msg assistant error";
    }
    log.scrollTop = log.scrollHeight;
  }
})();
