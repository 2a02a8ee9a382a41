// A-STAR extension: the token picker under the concepts field and the layout editor in the Layout panel
// (txt2img and img2img). Every global name defined here starts with "astar".
var astarExtension = window.astarExtension || {version: "0.3.0"};
window.astarExtension = astarExtension;

// What the picker and the layout editor share: finding the WebUI's elements, writing a field as typing does,
// comparing concepts, and starting once the UI is there.
var astarUi = (function() {
    "use strict";

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

    function setValue(input, value) {
        input.value = value;
        input.dispatchEvent(new Event("input", {bubbles: true})); // gradio reads the value on "input"
    }

    // A concept item as A-STAR compares it (astar_ext/params.py concept_key): "(Cat:1.3)" -> "cat", "# 5" -> "#5".
    function norm(text) {
        var s = String(text).trim().toLowerCase();
        for (var i = 0; i < 8; i++) {
            var t = s.replace(/^[([]\s*([\s\S]*?)\s*[)\]]$/, "$1").replace(/:\s*-?[\d.]+\s*$/, "").trim();
            if (t === s) break;
            s = t;
        }
        return s.replace(/^#\s*/, "#").replace(/\s+/g, " ");
    }

    // Runs check() once the WebUI's UI is there, then after every UI update and every `ms` milliseconds.
    function run(check, ms) {
        var started = false;

        function start() {
            if (started) return;
            started = true;
            check();
            if (typeof onAfterUiUpdate === "function") onAfterUiUpdate(check);
            setInterval(check, ms);
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
    }

    return {root: root, find: find, textField: textField, make: make, setValue: setValue, norm: norm, run: run};
})();

// The token picker.
//
// The picker asks the extension's route POST ./astar/v1/tokens for the prompt's words (the loaded model's
// tokenizer decides what a word and a token column are) and shows them as chips: clicking a chip, or Enter /
// Space on it, adds the word to the concepts field or removes it. Prompt text is only ever written with
// textContent, never as HTML.
var astarPicker = (function() {
    "use strict";

    var ROUTE = "./astar/v1/tokens";
    var TABS = ["txt2img", "img2img"];
    var DEBOUNCE_MS = 300;
    var RETRY_MS = 8000;
    var states = {};
    var find = astarUi.find, textField = astarUi.textField, make = astarUi.make, setValue = astarUi.setValue;
    var norm = astarUi.norm;

    function items(value) {
        return value.split(",").map(function(s) {
            return s.trim();
        }).filter(Boolean);
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

    astarUi.run(check, 1000);

    return {norm: norm, refresh: function(tab) {
        if (states[tab]) refresh(states[tab], false, true);
    }, states: states};
})();

// The layout editor in the accordion's Layout panel.
//
// A canvas with the aspect ratio of the tab's width and height shows one box per concept of the Concepts field,
// each in its own colour with its label. Drag on an empty spot to draw the selected concept's box, drag a box to
// move it, drag a corner handle to resize it. Keyboard: the canvas takes the focus; 1-9 select a concept, the
// arrows move its box (Shift: by 0.05), Alt+arrows move its bottom-right corner, Delete removes it. Under the
// canvas each concept has four number fields (x0 y0 x1 y1) and an add / delete button; "Clear all" removes every
// box. The Layout text field is the script argument: the editor writes the short form there
// ("cat 0.05 0.10 0.50 0.90; dog 0.55 0.10 0.95 0.90") and redraws from it whenever it changes (typing, pasted
// parameters, styles, "Send to img2img"). Mask regions (from the API) are shown and can be deleted, not edited.
// Labels are only ever set as text (textContent, canvas fillText), never as HTML.
var astarLayout = (function() {
    "use strict";

    var TABS = ["txt2img", "img2img"];
    var COLOURS = ["#f97316", "#22c55e", "#3b82f6", "#e11d48", "#a855f7", "#14b8a6", "#eab308", "#ec4899"];
    var MIN_SIDE = 0.02; // a drag shorter than this is a click, and boxes are at least this big
    var HANDLE_PX = 9;
    var states = {};
    var find = astarUi.find, textField = astarUi.textField, make = astarUi.make, setValue = astarUi.setValue;

    function numberField(id) {
        var block = find("#" + id);
        return block && block.querySelector("input[type=number]");
    }

    // --- the short form (the same rules as astar_ext/params.py parse_layout) ------------------------------------
    var key = astarUi.norm;

    function fmt(v) {
        var s = v.toFixed(4).replace(/0+$/, "");
        var parts = s.split(".");
        return parts[0] + "." + (parts[1] + "00").slice(0, Math.max(2, parts[1].length));
    }

    function parse(text) {
        var entries = [];
        var parts = String(text).split(/[;\n]/);
        for (var i = 0; i < parts.length; i++) {
            var words = parts[i].trim().split(/\s+/).filter(Boolean);
            if (!words.length) continue;
            if (words.length >= 3 && words[words.length - 2].toLowerCase() === "mask") {
                entries.push({concept: words.slice(0, -2).join(" "), mask: words[words.length - 1]});
                continue;
            }
            if (words.length < 5) {
                return {entries: entries, error: "'" + parts[i].trim() + "' is not 'concept x0 y0 x1 y1'"};
            }
            var nums = words.slice(-4).map(Number);
            var name = words.slice(0, -4).join(" ");
            var ok = nums.every(function(v) {
                return isFinite(v) && v >= 0 && v <= 1;
            }) && nums[0] < nums[2] && nums[1] < nums[3];
            if (!ok) {
                var msg = "the box of '" + name + "' must be 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1";
                return {entries: entries, error: msg};
            }
            entries.push({concept: name, box: nums});
        }
        return {entries: entries, error: null};
    }

    function format(entries) {
        return entries.map(function(e) {
            return e.box ? e.concept + " " + e.box.map(fmt).join(" ") : e.concept + " mask " + e.mask;
        }).join("; ");
    }

    function conceptList(value) {
        var seen = {};
        return String(value).split(",").map(function(s) {
            return s.trim();
        }).filter(function(s) {
            var k = key(s);
            if (!s || seen[k]) return false;
            seen[k] = true;
            return true;
        });
    }

    // --- state -----------------------------------------------------------------------------------------------------
    function entryOf(st, name) {
        var k = key(name);
        for (var i = 0; i < st.entries.length; i++) {
            if (key(st.entries[i].concept) === k) return st.entries[i];
        }
        return null;
    }

    function colourOf(st, name) {
        var i = st.concepts.map(key).indexOf(key(name));
        return i < 0 ? "#9ca3af" : COLOURS[i % COLOURS.length];
    }

    function aspect(st) {
        var w = st.width ? Number(st.width.value) : 0;
        var h = st.height ? Number(st.height.value) : 0;
        return w > 0 && h > 0 ? h / w : 1;
    }

    function commit(st) {
        var text = format(st.entries);
        st.written = text;
        st.error = null;
        if (st.field.value !== text) setValue(st.field, text);
        renderList(st);
        draw(st);
    }

    function readField(st) {
        var result = parse(st.field.value);
        st.written = st.field.value;
        st.error = result.error;
        if (!result.error) st.entries = result.entries;
        loadMasks(st);
        renderList(st);
        draw(st);
    }

    function loadMasks(st) {
        st.entries.forEach(function(e) {
            if (!e.mask || (e.image && e.image.astarData === e.mask)) return;
            var img = new Image();
            img.astarData = e.mask;
            img.onload = function() {
                draw(st);
            };
            img.src = "data:image/png;base64," + e.mask.replace(/[^A-Za-z0-9+/=]/g, "");
            e.image = img;
        });
    }

    // --- drawing ---------------------------------------------------------------------------------------------------
    function draw(st) {
        var canvas = st.canvas;
        var ratio = aspect(st);
        st.stage.style.aspectRatio = (1 / ratio).toFixed(4);
        var cssW = canvas.clientWidth;
        var cssH = canvas.clientHeight;
        if (!cssW || !cssH) return;
        var dpr = window.devicePixelRatio || 1;
        if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
            canvas.width = Math.round(cssW * dpr);
            canvas.height = Math.round(cssH * dpr);
        }
        var ctx = canvas.getContext("2d");
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        ctx.clearRect(0, 0, cssW, cssH);
        ctx.fillStyle = "#1f2329";
        ctx.fillRect(0, 0, cssW, cssH);
        ctx.strokeStyle = "rgba(255,255,255,0.08)";
        ctx.lineWidth = 1;
        for (var g = 1; g < 10; g++) {
            ctx.beginPath();
            ctx.moveTo(Math.round(cssW * g / 10) + 0.5, 0);
            ctx.lineTo(Math.round(cssW * g / 10) + 0.5, cssH);
            ctx.moveTo(0, Math.round(cssH * g / 10) + 0.5);
            ctx.lineTo(cssW, Math.round(cssH * g / 10) + 0.5);
            ctx.stroke();
        }
        var known = st.concepts.map(key);
        st.entries.forEach(function(e) {
            var colour = colourOf(st, e.concept);
            var selected = key(e.concept) === st.selected;
            var stray = known.indexOf(key(e.concept)) < 0;
            ctx.save();
            if (e.mask) {
                if (e.image && e.image.complete && e.image.naturalWidth) {
                    ctx.globalAlpha = 0.45;
                    ctx.drawImage(e.image, 0, 0, cssW, cssH);
                }
                ctx.restore();
                return;
            }
            var x = e.box[0] * cssW, y = e.box[1] * cssH;
            var w = (e.box[2] - e.box[0]) * cssW, h = (e.box[3] - e.box[1]) * cssH;
            ctx.globalAlpha = selected ? 0.3 : 0.18;
            ctx.fillStyle = colour;
            ctx.fillRect(x, y, w, h);
            ctx.globalAlpha = 1;
            ctx.strokeStyle = colour;
            ctx.lineWidth = selected ? 3 : 2;
            if (stray) ctx.setLineDash([5, 4]);
            ctx.strokeRect(x + 1, y + 1, Math.max(0, w - 2), Math.max(0, h - 2));
            ctx.setLineDash([]);
            ctx.font = "13px sans-serif";
            ctx.textBaseline = "top";
            var label = e.concept + (stray ? " (not a concept)" : "");
            var tw = ctx.measureText(label).width + 8;
            ctx.fillStyle = colour;
            ctx.fillRect(x + 1, y + 1, Math.min(tw, Math.max(w - 2, 0)), 18);
            ctx.fillStyle = "#111";
            ctx.save();
            ctx.beginPath();
            ctx.rect(x + 1, y + 1, Math.max(w - 2, 0), 18);
            ctx.clip();
            ctx.fillText(label, x + 5, y + 3); // canvas text: never parsed as HTML
            ctx.restore();
            if (selected) {
                ctx.fillStyle = "#fff";
                corners(e.box).forEach(function(c) {
                    ctx.fillRect(c[0] * cssW - 4, c[1] * cssH - 4, 8, 8);
                    ctx.strokeRect(c[0] * cssW - 4, c[1] * cssH - 4, 8, 8);
                });
            }
            ctx.restore();
        });
        st.canvas.setAttribute("aria-label", "Layout canvas: " + (st.entries.length ? st.entries.map(function(e) {
            return e.box ? e.concept + " " + e.box.map(fmt).join(" ") : e.concept + " mask";
        }).join("; ") : "no boxes") + ". Keys 1 to 9 select a concept, arrows move its box, Alt+arrows resize, " +
            "Delete removes it.");
    }

    function corners(box) {
        return [[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]];
    }

    // --- the list of concepts with their numbers ---------------------------------------------------------------
    function renderList(st) {
        var focusedId = document.activeElement && document.activeElement.getAttribute &&
            document.activeElement.getAttribute("data-astar-id");
        st.list.textContent = "";
        st.chooser.textContent = "";
        var names = st.concepts.slice();
        st.entries.forEach(function(e) {
            if (names.map(key).indexOf(key(e.concept)) < 0) names.push(e.concept);
        });
        if (!st.concepts.length) {
            st.list.appendChild(make("div", "astar-layout-hint", "Name the concepts above: each gets a colour here."));
        }
        if (st.selected === null && st.concepts.length) st.selected = key(st.concepts[0]);
        names.forEach(function(name, i) {
            var e = entryOf(st, name);
            var stray = st.concepts.map(key).indexOf(key(name)) < 0;
            var colour = colourOf(st, name);
            if (!stray) {
                var pick = make("button", "astar-chip astar-layout-pick");
                pick.type = "button";
                pick.setAttribute("aria-pressed", key(name) === st.selected ? "true" : "false");
                pick.title = "Draw the box of this concept (key " + (i + 1) + ")";
                var dot = make("span", "astar-layout-swatch");
                dot.style.background = colour;
                pick.appendChild(dot);
                pick.appendChild(make("span", "astar-layout-name", name));
                pick.addEventListener("click", function() {
                    st.selected = key(name);
                    renderList(st);
                    draw(st);
                });
                st.chooser.appendChild(pick);
            }
            var row = make("div", "astar-layout-row" + (stray ? " astar-layout-stray" : ""));
            var sw = make("span", "astar-layout-swatch");
            sw.style.background = colour;
            row.appendChild(sw);
            row.appendChild(make("span", "astar-layout-name", name + (stray ? " (not a concept)" : "")));
            if (e && e.mask) {
                row.appendChild(make("span", "astar-layout-mask", "mask"));
            } else {
                ["x0", "y0", "x1", "y1"].forEach(function(axis, j) {
                    var input = make("input", "astar-layout-num");
                    input.type = "number";
                    input.min = "0";
                    input.max = "1";
                    input.step = "0.01";
                    input.value = e ? fmt(e.box[j]) : "";
                    input.placeholder = axis;
                    input.setAttribute("aria-label", axis + " of " + name);
                    input.setAttribute("data-astar-id", key(name) + "\u0000" + axis);
                    input.addEventListener("change", function() {
                        numberChanged(st, name, row);
                    });
                    row.appendChild(input);
                });
            }
            var button = make("button", "astar-layout-act", e ? "Delete" : "Add box");
            button.type = "button";
            button.setAttribute("aria-label", (e ? "Delete the region of " : "Add a box for ") + name);
            button.setAttribute("data-astar-id", key(name) + "\u0000act");
            button.addEventListener("click", function() {
                if (entryOf(st, name)) {
                    remove(st, name);
                } else {
                    add(st, name);
                }
            });
            row.appendChild(button);
            st.list.appendChild(row);
        });
        if (st.error) st.status.textContent = "The Layout field has an error: " + st.error;
        else st.status.textContent = "";
        if (focusedId) {
            var again = Array.prototype.filter.call(st.host.querySelectorAll("[data-astar-id]"), function(n) {
                return n.getAttribute("data-astar-id") === focusedId;
            })[0];
            if (again) again.focus();
        }
    }

    function numberChanged(st, name, row) {
        var values = Array.prototype.map.call(row.querySelectorAll("input.astar-layout-num"), function(n) {
            return n.value === "" ? NaN : Number(n.value);
        });
        if (!values.every(isFinite)) return; // wait until all four are there
        var box = values.map(function(v) {
            return Math.min(1, Math.max(0, v));
        });
        if (!(box[0] < box[2] && box[1] < box[3])) {
            st.status.textContent = "The box of '" + name + "' needs x0 < x1 and y0 < y1.";
            return;
        }
        var e = entryOf(st, name);
        if (e) {
            e.box = box;
            delete e.mask;
        } else {
            st.entries.push({concept: name, box: box});
        }
        st.selected = key(name);
        commit(st);
    }

    function add(st, name) {
        var n = st.entries.length;
        var x = 0.1 + 0.1 * (n % 5);
        st.entries.push({concept: name, box: [x, 0.2, Math.min(1, x + 0.4), 0.8]});
        st.selected = key(name);
        commit(st);
    }

    function remove(st, name) {
        st.entries = st.entries.filter(function(e) {
            return key(e.concept) !== key(name);
        });
        commit(st);
    }

    // --- pointer and keyboard ------------------------------------------------------------------------------------
    function point(st, event) {
        var r = st.canvas.getBoundingClientRect();
        return [Math.min(1, Math.max(0, (event.clientX - r.left) / r.width)),
            Math.min(1, Math.max(0, (event.clientY - r.top) / r.height))];
    }

    function hit(st, p) {
        var r = st.canvas.getBoundingClientRect();
        var hx = HANDLE_PX / r.width, hy = HANDLE_PX / r.height;
        var boxes = st.entries.filter(function(e) {
            return e.box;
        });
        // the selected box first, then the others from the top
        boxes.sort(function(a, b) {
            return (key(b.concept) === st.selected) - (key(a.concept) === st.selected);
        });
        for (var i = 0; i < boxes.length; i++) {
            var b = boxes[i].box;
            var cs = corners(b);
            for (var c = 0; c < 4; c++) {
                if (Math.abs(p[0] - cs[c][0]) <= hx && Math.abs(p[1] - cs[c][1]) <= hy) {
                    return {entry: boxes[i], mode: "resize", corner: c};
                }
            }
        }
        for (var j = boxes.length - 1; j >= 0; j--) {
            var bb = boxes[j].box;
            if (p[0] >= bb[0] && p[0] <= bb[2] && p[1] >= bb[1] && p[1] <= bb[3]) {
                return {entry: boxes[j], mode: "move"};
            }
        }
        return null;
    }

    function onDown(st, event) {
        if (event.button !== 0) return;
        var p = point(st, event);
        var h = hit(st, p);
        st.canvas.focus();
        if (h) {
            st.selected = key(h.entry.concept);
            st.drag = {mode: h.mode, corner: h.corner, entry: h.entry, start: p, box: h.entry.box.slice()};
        } else {
            var name = selectedName(st);
            if (!name) return;
            st.drag = {mode: "draw", name: name, start: p, box: null};
        }
        st.canvas.setPointerCapture(event.pointerId);
        event.preventDefault();
        renderList(st);
        draw(st);
    }

    function selectedName(st) {
        for (var i = 0; i < st.concepts.length; i++) {
            if (key(st.concepts[i]) === st.selected) return st.concepts[i];
        }
        return st.concepts[0] || null;
    }

    function clampBox(b) {
        var x0 = Math.max(0, Math.min(b[0], b[2])), x1 = Math.min(1, Math.max(b[0], b[2]));
        var y0 = Math.max(0, Math.min(b[1], b[3])), y1 = Math.min(1, Math.max(b[1], b[3]));
        return [x0, y0, x1, y1].map(function(v) {
            return Math.round(v * 100) / 100;
        });
    }

    function onMove(st, event) {
        var d = st.drag;
        if (!d) {
            var over = hit(st, point(st, event));
            st.canvas.style.cursor = !over ? "crosshair" : over.mode === "move" ? "move" :
                (over.corner === 0 || over.corner === 3 ? "nwse-resize" : "nesw-resize");
            return;
        }
        var p = point(st, event);
        var dx = p[0] - d.start[0], dy = p[1] - d.start[1];
        if (d.mode === "draw") {
            if (Math.abs(dx) < MIN_SIDE && Math.abs(dy) < MIN_SIDE && !d.entry) return;
            var box = clampBox([d.start[0], d.start[1], p[0], p[1]]);
            if (!d.entry) {
                d.entry = entryOf(st, d.name);
                if (!d.entry) {
                    d.entry = {concept: d.name, box: box};
                    st.entries.push(d.entry);
                }
                delete d.entry.mask;
            }
            d.entry.box = box;
        } else if (d.mode === "move") {
            var w = d.box[2] - d.box[0], h = d.box[3] - d.box[1];
            var x0 = Math.min(1 - w, Math.max(0, d.box[0] + dx)), y0 = Math.min(1 - h, Math.max(0, d.box[1] + dy));
            d.entry.box = [x0, y0, x0 + w, y0 + h].map(function(v) {
                return Math.round(v * 100) / 100;
            });
        } else {
            var b = d.box.slice();
            var xi = d.corner === 0 || d.corner === 2 ? 0 : 2, yi = d.corner < 2 ? 1 : 3;
            b[xi] = p[0];
            b[yi] = p[1];
            d.entry.box = clampBox(b);
        }
        draw(st);
    }

    function onUp(st, event) {
        var d = st.drag;
        if (!d) return;
        st.drag = null;
        if (st.canvas.hasPointerCapture(event.pointerId)) st.canvas.releasePointerCapture(event.pointerId);
        if (d.entry && d.entry.box) {
            var b = d.entry.box;
            if (b[2] - b[0] < MIN_SIDE || b[3] - b[1] < MIN_SIDE) {
                b[2] = Math.min(1, b[0] + MIN_SIDE);
                b[3] = Math.min(1, b[1] + MIN_SIDE);
                b[0] = b[2] - MIN_SIDE;
                b[1] = b[3] - MIN_SIDE;
            }
            commit(st);
        } else {
            renderList(st);
            draw(st);
        }
    }

    function onKey(st, event) {
        if (/^[1-9]$/.test(event.key) && !event.altKey && !event.ctrlKey && !event.metaKey) {
            var name = st.concepts[Number(event.key) - 1];
            if (name) {
                st.selected = key(name);
                renderList(st);
                draw(st);
                event.preventDefault();
            }
            return;
        }
        var e = entryOf(st, selectedName(st) || "");
        if (!e) return;
        if (event.key === "Delete" || event.key === "Backspace") {
            remove(st, e.concept);
            event.preventDefault();
            return;
        }
        var move = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]}[event.key];
        if (!move || !e.box) return;
        var stepSize = event.shiftKey ? 0.05 : 0.01;
        var b = e.box.slice();
        if (event.altKey) {
            b[2] = Math.min(1, Math.max(b[0] + MIN_SIDE, b[2] + move[0] * stepSize));
            b[3] = Math.min(1, Math.max(b[1] + MIN_SIDE, b[3] + move[1] * stepSize));
        } else {
            var w = b[2] - b[0], h = b[3] - b[1];
            b[0] = Math.min(1 - w, Math.max(0, b[0] + move[0] * stepSize));
            b[1] = Math.min(1 - h, Math.max(0, b[1] + move[1] * stepSize));
            b[2] = b[0] + w;
            b[3] = b[1] + h;
        }
        e.box = b.map(function(v) {
            return Math.round(v * 100) / 100;
        });
        event.preventDefault();
        commit(st);
    }

    // --- set-up ---------------------------------------------------------------------------------------------------
    function setup(tab) {
        var old = states[tab];
        if (old && old.host.isConnected && old.field.isConnected && old.conceptsField.isConnected) return old;
        var host = find("#script_" + tab + "_astar_layout_editor");
        var field = textField("script_" + tab + "_astar_layout");
        var conceptsField = textField("script_" + tab + "_astar_concepts");
        if (!host || !field || !conceptsField) return null;
        var box = host.querySelector(".prose") || host;
        var st = {tab: tab, host: host, field: field, conceptsField: conceptsField, entries: [], concepts: [],
            selected: null, drag: null, written: null, error: null, size: ""};
        st.width = numberField(tab + "_width");
        st.height = numberField(tab + "_height");
        st.chooser = make("div", "astar-layout-chooser");
        st.chooser.setAttribute("role", "group");
        st.chooser.setAttribute("aria-label", "Concept whose box the canvas draws");
        st.stage = make("div", "astar-layout-stage");
        st.canvas = make("canvas", "astar-layout-canvas");
        st.canvas.tabIndex = 0;
        st.canvas.setAttribute("role", "application");
        st.stage.appendChild(st.canvas);
        var tools = make("div", "astar-layout-tools");
        var clear = make("button", "astar-layout-clear", "Clear all");
        clear.type = "button";
        clear.addEventListener("click", function() {
            st.entries = [];
            commit(st);
        });
        tools.appendChild(clear);
        tools.appendChild(make("span", "astar-layout-hint", "Drag to draw the selected concept's box; drag a box to " +
            "move it, a corner to resize it. Keys: 1-9, arrows, Alt+arrows, Delete."));
        st.list = make("div", "astar-layout-list");
        st.status = make("div", "astar-layout-status");
        st.status.setAttribute("aria-live", "polite");
        box.textContent = "";
        [st.chooser, st.stage, tools, st.list, st.status].forEach(function(n) {
            box.appendChild(n);
        });
        st.canvas.addEventListener("pointerdown", function(e) {
            onDown(st, e);
        });
        st.canvas.addEventListener("pointermove", function(e) {
            onMove(st, e);
        });
        st.canvas.addEventListener("pointerup", function(e) {
            onUp(st, e);
        });
        st.canvas.addEventListener("pointercancel", function(e) {
            onUp(st, e);
        });
        st.canvas.addEventListener("keydown", function(e) {
            onKey(st, e);
        });
        field.addEventListener("input", function() {
            if (field.value !== st.written) readField(st);
        });
        conceptsField.addEventListener("input", function() {
            sync(st);
        });
        states[tab] = st;
        st.concepts = conceptList(conceptsField.value);
        readField(st);
        return st;
    }

    // Follows what changed without an event: the concepts, the field (pasted parameters, styles, Send to img2img),
    // the width and height, the panel's size.
    function sync(st) {
        var concepts = conceptList(st.conceptsField.value);
        if (concepts.join("\u0000") !== st.concepts.join("\u0000")) {
            st.concepts = concepts;
            if (st.selected !== null && concepts.map(key).indexOf(st.selected) < 0) st.selected = null;
            renderList(st);
            draw(st);
        }
        if (st.field.value !== st.written && !st.drag) readField(st);
        var size = aspect(st) + "x" + st.canvas.clientWidth;
        if (size !== st.size) {
            st.size = size;
            draw(st);
        }
    }

    function check() {
        TABS.forEach(function(tab) {
            var st = setup(tab);
            if (st) sync(st);
        });
    }

    astarUi.run(check, 500);

    return {parse: parse, format: format, key: key, states: states};
})();
