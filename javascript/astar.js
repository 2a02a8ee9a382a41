// A-STAR extension: the token picker under the concepts field (txt2img and img2img).
// Every global name defined here starts with "astar".
//
// The picker asks the extension's route POST ./astar/v1/tokens for the prompt's words (the loaded model's
// tokenizer decides what a word and a token column are) and shows them as chips: clicking a chip, or Enter /
// Space on it, adds the word to the concepts field or removes it. Prompt text is only ever written with
// textContent, never as HTML.
var astarExtension = window.astarExtension || {version: "0.2.0"};
window.astarExtension = astarExtension;

var astarPicker = (function() {
    "use strict";

    var ROUTE = "./astar/v1/tokens";
    var TABS = ["txt2img", "img2img"];
    var DEBOUNCE_MS = 300;
    var RETRY_MS = 8000;
    var states = {};
    var started = false;

    function root() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function find(selector) {
        return root().querySelector(selector);
    }

    function textField(id) {
        var block = find("#" + id);
        return block && block.querySelector("textarea, input");
    }

    function make(tag, className, text) {
        var node = document.createElement(tag);
        if (className) node.className = className;
        if (text !== undefined) node.textContent = text;
        return node;
    }

    // A concept item as A-STAR compares it: "(Cat:1.3)" -> "cat", "# 5" -> "#5".
    function norm(text) {
        var s = String(text).trim().toLowerCase();
        for (var i = 0; i < 8; i++) {
            var t = s.replace(/^[([]\s*([\s\S]*?)\s*[)\]]$/, "$1").replace(/:\s*-?[\d.]+\s*$/, "").trim();
            if (t === s) break;
            s = t;
        }
        return s.replace(/^#\s*/, "#").replace(/\s+/g, " ");
    }

    function items(value) {
        return value.split(",").map(function(s) {
            return s.trim();
        }).filter(Boolean);
    }

    function setValue(input, value) {
        input.value = value;
        input.dispatchEvent(new Event("input", {bubbles: true})); // gradio reads the value on "input"
    }

    function request(prompt, concepts) {
        return fetch(ROUTE, {
            method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({prompt: prompt, concepts: concepts}),
        }).then(function(res) {
            return res.json().catch(function() {
                return {};
            }).then(function(body) {
                if (!res.ok && !body.error) body.error = "the A-STAR route answered HTTP " + res.status;
                return body;
            });
        }).catch(function(err) {
            return {error: "the A-STAR route did not answer (" + err + ")"};
        });
    }

    function setStatus(st, lines, isError) {
        st.status.textContent = "";
        st.status.classList.toggle("astar-status-error", !!isError);
        (Array.isArray(lines) ? lines : [lines]).forEach(function(line) {
            if (line) st.status.appendChild(make("div", "astar-status-line", line));
        });
    }

    function columnsLabel(cols) {
        if (!cols.length) return "";
        return cols.length === 1 ? "#" + cols[0] : "#" + cols[0] + "-" + cols[cols.length - 1];
    }

    function isSelected(word, concepts) {
        var wanted = items(concepts).map(norm);
        var own = [word.text].concat(word.concepts || []).map(norm);
        return own.some(function(s) {
            return wanted.indexOf(s) >= 0;
        });
    }

    function chip(st, word) {
        if (word.kind === "punct") return make("span", "astar-punct", word.text);
        var button = make("button", "astar-chip" + (word.kind === "embedding" ? " astar-chip-embedding" : ""));
        button.type = "button";
        button.appendChild(make("span", "astar-chip-text", word.text));
        button.appendChild(make("span", "astar-chip-cols", columnsLabel(word.columns)));
        var kind = word.kind === "embedding" ? "textual-inversion embedding, " : "";
        var cols = word.columns.map(function(c) {
            return "#" + c;
        }).join(" ");
        button.title = kind + "token column" + (word.columns.length > 1 ? "s " : " ") + cols +
            ". Press to add to the concepts or remove.";
        button.setAttribute("aria-pressed", (word.concepts || []).length ? "true" : "false");
        button.astarWord = word;
        button.addEventListener("click", function() {
            toggle(st, word);
        });
        return button;
    }

    function separator(text, className, title) {
        var node = make("span", "astar-sep " + className, text);
        node.setAttribute("role", "separator");
        if (title) node.title = title;
        return node;
    }

    function chips(st) {
        return Array.prototype.slice.call(st.list.querySelectorAll("button.astar-chip"));
    }

    function render(st, data) {
        var focused = chips(st).indexOf(document.activeElement);
        st.data = data;
        st.list.textContent = "";
        if (data.error) {
            setStatus(st, data.error, true);
            return;
        }
        (data.extra_networks || []).forEach(function(tag) {
            var node = make("span", "astar-chip astar-chip-network", tag.text);
            node.title = "extra network (" + tag.network + "): removed from the prompt before tokenizing, " +
                "not a concept";
            st.list.appendChild(node);
        });
        data.parts.forEach(function(part, p) {
            if (p > 0) st.list.appendChild(separator("AND", "astar-sep-and", "the next AND-part of the prompt"));
            part.chunks.forEach(function(chunk) {
                if (chunk.index > 0) {
                    st.list.appendChild(separator(chunk.break ? "BREAK" : "75-token limit",
                        chunk.break ? "astar-sep-break" : "astar-sep-chunk",
                        "chunk " + (chunk.index + 1) + " starts at token column #" + chunk.first_column));
                }
                part.words.forEach(function(word) {
                    if (word.chunk === chunk.index) st.list.appendChild(chip(st, word));
                });
            });
        });
        var notes = (data.warnings || []).slice();
        if (data.refusal) notes.push(data.refusal);
        setStatus(st, notes, false);
        var all = chips(st);
        if (focused >= 0 && all.length) all[Math.min(focused, all.length - 1)].focus();
    }

    function highlight(st) {
        chips(st).forEach(function(button) {
            button.setAttribute("aria-pressed", isSelected(button.astarWord, st.concepts.value) ? "true" : "false");
        });
    }

    function toggle(st, word) {
        var own = [word.text].concat(word.concepts || []).map(norm);
        var current = items(st.concepts.value);
        var kept = current.filter(function(item) {
            return own.indexOf(norm(item)) < 0;
        });
        if (kept.length === current.length) kept.push(word.text);
        setValue(st.concepts, kept.join(", "));
        word.concepts = kept.length < current.length ? [] : [word.text];
        highlight(st);
    }

    // periodic: a check, which waits RETRY_MS after an error; force: even when hidden or unchanged.
    function refresh(st, periodic, force) {
        if (!force && !st.picker.getClientRects().length) return; // accordion closed: wait until it opens
        if (periodic && st.retryAt && Date.now() < st.retryAt) return;
        var key = st.prompt.value + "\u0000" + st.concepts.value;
        if (!force && key === st.key) return;
        st.key = key;
        st.retryAt = 0;
        if (!st.prompt.value.trim()) {
            render(st, {parts: [], extra_networks: [], warnings: []});
            setStatus(st, "Type a prompt: its words appear here.");
            return;
        }
        request(st.prompt.value, st.concepts.value).then(function(data) {
            if (key !== st.key) return; // a newer request is on its way
            if (data.error) {
                st.key = null;
                st.retryAt = Date.now() + RETRY_MS;
            }
            render(st, data);
        });
    }

    function schedule(st) {
        clearTimeout(st.timer);
        st.timer = setTimeout(function() {
            st.timer = null;
            refresh(st, false, false);
        }, DEBOUNCE_MS);
    }

    function suggest(st) {
        setStatus(st, "Looking for the concept nouns of the prompt...");
        request(st.prompt.value, "").then(function(data) {
            if (data.error) {
                setStatus(st, data.error, true);
            } else if (!data.suggested || !data.suggested.length) {
                setStatus(st, "No likely concept nouns found: pick the words yourself.");
            } else {
                setValue(st.concepts, data.suggested.join(", "));
                setStatus(st, "Suggested: " + data.suggested.join(", ") + ". Edit the concepts as you like.");
            }
        });
    }

    function onKey(st, event) {
        var all = chips(st);
        var at = all.indexOf(event.target);
        if (at < 0) return;
        var next = {ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1}[event.key];
        if (next === undefined) return;
        event.preventDefault();
        all[Math.max(0, Math.min(all.length - 1, next))].focus();
    }

    function setup(tab) {
        var old = states[tab];
        if (old && old.picker.isConnected && old.prompt.isConnected && old.concepts.isConnected) return old;
        var prompt = textField(tab + "_prompt");
        var concepts = textField("script_" + tab + "_astar_concepts");
        var picker = find("#script_" + tab + "_astar_picker");
        if (!prompt || !concepts || !picker) return null;
        var host = picker.querySelector(".prose") || picker;
        var st = {tab: tab, prompt: prompt, concepts: concepts, picker: picker, key: null, timer: null};
        st.list = make("div", "astar-chips");
        st.list.setAttribute("role", "group");
        st.list.setAttribute("aria-label", "Words of the prompt: press a word to add it to the A-STAR concepts " +
            "or remove it; the arrow keys move between words");
        st.status = make("div", "astar-status");
        st.status.setAttribute("aria-live", "polite");
        host.textContent = "";
        host.appendChild(st.list);
        host.appendChild(st.status);
        prompt.addEventListener("input", function() {
            schedule(st);
        });
        concepts.addEventListener("input", function() {
            highlight(st);
            schedule(st);
        });
        st.list.addEventListener("keydown", function(event) {
            onKey(st, event);
        });
        var button = find("#script_" + tab + "_astar_suggest");
        if (button) {
            button.addEventListener("click", function() {
                suggest(st);
            });
        }
        states[tab] = st;
        return st;
    }

    // Runs after UI updates and once a second: finds the tabs' elements, and refreshes a picker whose prompt
    // or concepts were changed without an input event (pasted parameters, styles, "Send to img2img").
    function check() {
        TABS.forEach(function(tab) {
            var st = setup(tab);
            if (st && !st.timer) refresh(st, true, false);
        });
    }

    function start() {
        if (started) return;
        started = true;
        check();
        if (typeof onAfterUiUpdate === "function") onAfterUiUpdate(check);
        setInterval(check, 1000);
    }

    function waitForUi() {
        if (find("#txt2img_prompt")) {
            start();
            return;
        }
        var observer = new MutationObserver(function() {
            if (find("#txt2img_prompt") || find("#img2img_prompt")) {
                observer.disconnect();
                start();
            }
        });
        observer.observe(document.body || document.documentElement, {childList: true, subtree: true});
    }

    if (typeof onUiLoaded === "function") {
        onUiLoaded(start);
    } else if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", waitForUi);
    } else {
        waitForUi();
    }

    return {norm: norm, refresh: function(tab) {
        if (states[tab]) refresh(states[tab], false, true);
    }, states: states};
})();
