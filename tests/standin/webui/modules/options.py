"""STAND-IN of ``modules/options.py`` of WebUI 1.10.1: ``OptionInfo``, ``OptionHTML``, ``Options``.

``Options`` keeps the settings in ``.data`` (attribute access reads/writes it; unknown keys fall back to
``data_labels`` defaults), ``add_option(key, info)``, ``set``, ``get_default``, ``onchange`` and ``cast_value``
behave like the real ones; settings files, freezing and categories are left out.
"""

from __future__ import annotations


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before='', comment_after='', infotext=None, restrict_api=False,
                 category_id=None):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api

    # chainable decorations of the label, as in the WebUI
    def link(self, label, url):
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label, js_func):
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html):
        self.comment_after += html
        return self

    def needs_restart(self):
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self):
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


class OptionHTML(OptionInfo):
    def __init__(self, text):
        super().__init__(str(text).strip(), label='')
        self.do_not_save = True


def options_section(section_identifier, options_dict):
    for info in options_dict.values():
        info.section = tuple(section_identifier[:2])
        if len(section_identifier) == 3:
            info.category_id = section_identifier[2]
    return options_dict


_BUILTIN = ("data_labels", "data", "restricted_opts", "typemap")


class Options:
    typemap = {int: float}

    def __init__(self, data_labels: dict[str, OptionInfo], restricted_opts=None):
        self.data_labels = data_labels
        self.data = {k: v.default for k, v in data_labels.items() if not v.do_not_save}
        self.restricted_opts = restricted_opts or set()

    def __setattr__(self, key, value):
        if key in _BUILTIN:
            return object.__setattr__(self, key, value)
        if key in self.data or key in self.data_labels:
            info = self.data_labels.get(key)
            if info is not None and info.do_not_save:
                return None
            self.data[key] = value
            return None
        return object.__setattr__(self, key, value)

    def __getattr__(self, item):
        if item in _BUILTIN:
            return object.__getattribute__(self, item)
        data = object.__getattribute__(self, "data")
        if item in data:
            return data[item]
        labels = object.__getattribute__(self, "data_labels")
        if item in labels:
            return labels[item].default
        return object.__getattribute__(self, item)

    def set(self, key, value, is_api=False, run_callbacks=True):
        """Sets an option and runs its ``onchange``; returns whether it changed."""
        old = self.data.get(key, None)
        if old == value:
            return False
        info = self.data_labels[key]
        if info.do_not_save or (is_api and info.restrict_api):
            return False
        setattr(self, key, value)
        if run_callbacks and info.onchange is not None:
            try:
                info.onchange()
            except Exception as e:
                from modules import errors

                errors.display(e, f"changing setting {key} to {value}")
                setattr(self, key, old)
                return False
        return True

    def get_default(self, key):
        info = self.data_labels.get(key)
        return None if info is None else info.default

    def onchange(self, key, func, call=True):
        self.data_labels[key].onchange = func
        if call:
            func()

    def add_option(self, key, info):
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def same_type(self, x, y):
        if x is None or y is None:
            return True
        return self.typemap.get(type(x), type(x)) == self.typemap.get(type(y), type(y))

    def cast_value(self, key, value):
        """Casts ``value`` (e.g. a string from an infotext) to the type of the setting's default."""
        if value is None:
            return None
        default = self.data_labels[key].default if key in self.data_labels else None
        if default is None:
            default = getattr(self, key, None)
        if default is None:
            return None
        expected = type(default)
        if expected is bool and value == "False":
            return False
        if expected is bool and value == "True":
            return True
        return expected(value)

    def dumpjson(self):
        import json

        return json.dumps(self.data, default=str)
