"""STAND-IN of Forge Classic's X/Y/Z plot (``extensions-builtin/xyz/scripts/xyz_grid.py``): the WebUI stand-in's,
except that the value formatters (``format_value_add_label`` and the others) are not in the script's module:
Classic moved them to ``lib_xyz/axis_format.py`` and imports only ``AxisOption`` (whose default formatter is
``format_value_add_label``, as in the WebUI) into the script."""

import os

_WEBUI_XYZ = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "webui",
                          "scripts", "xyz_grid.py")
with open(_WEBUI_XYZ, encoding="utf8") as _f:
    exec(compile(_f.read(), _WEBUI_XYZ, "exec"))  # noqa: S102 - the WebUI stand-in's script, in this module
for _name in ("format_value_add_label", "format_value", "format_value_join_list", "format_remove_path",
              "format_nothing"):
    globals().pop(_name, None)
