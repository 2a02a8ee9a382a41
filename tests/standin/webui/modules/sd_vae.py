"""STAND-IN of ``modules/sd_vae.py`` of WebUI 1.10.1: no separate VAE is loaded (names/hashes are ``None``)."""

vae_dict = {}
loaded_vae_file = None


def get_loaded_vae_name():
    return None


def get_loaded_vae_hash():
    return None


def reload_vae_weights(sd_model=None, vae_file=None):
    return sd_model
