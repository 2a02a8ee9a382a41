"""STAND-IN of ``modules/lowvram.py`` of WebUI 1.10.1: ``is_enabled(sd_model)`` reads ``sd_model.lowvram`` (set by
the harness from ``cmd_opts.lowvram``/``medvram``); moving weights between devices is a no-op on the CPU host."""


def is_needed(sd_model):
    from modules import shared

    return shared.cmd_opts.lowvram or shared.cmd_opts.medvram


def is_enabled(sd_model):
    return getattr(sd_model, "lowvram", False)


def send_everything_to_cpu():
    pass


def setup_for_low_vram(sd_model, use_medvram):
    sd_model.lowvram = True
