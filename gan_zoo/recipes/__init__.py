"""Per-family training recipes, resolved by name (config.recipe) through `RECIPES`."""

from gan_zoo.recipes.base import GANState, Phase, Recipe, Stage


def _biggan(config, networks=None):
    from gan_zoo.recipes import biggan  # noqa: PLC0415
    return biggan.make_recipe(config, networks)


def _progan(config, networks=None):
    from gan_zoo.recipes import progan  # noqa: PLC0415
    return progan.make_staged_recipe(config, networks)


def _stylegan(config, networks=None):
    from gan_zoo.recipes import stylegan  # noqa: PLC0415
    return stylegan.make_recipe(config, networks)


def _stylegan_xl(config, networks=None):
    from gan_zoo.recipes import stylegan_xl  # noqa: PLC0415
    return stylegan_xl.make_recipe(config, networks)


def _stylegan_t(config, networks=None):
    from gan_zoo.recipes import stylegan_t  # noqa: PLC0415
    return stylegan_t.make_recipe(config, networks)


RECIPES = {"biggan": _biggan, "progan": _progan, "stylegan_xl": _stylegan_xl,
           "stylegan_t": _stylegan_t}
RECIPES.update(stylegan2=_stylegan, stylegan3=_stylegan)  # the family is config.recipe


def make_recipe(config, networks=None) -> Recipe:
    """The recipe named by config.recipe, built for `config`."""
    name = config.recipe
    if name not in RECIPES:
        raise ValueError(f"config.recipe: unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name](config, networks)


__all__ = ["GANState", "Phase", "Recipe", "RECIPES", "Stage", "make_recipe"]
