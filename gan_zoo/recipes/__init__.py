"""Per-family training recipes, resolved by name (config.recipe) through `RECIPES`."""

from gan_zoo.recipes.base import GANState, Phase, Recipe


def _biggan(config, networks=None):
    from gan_zoo.recipes import biggan  # noqa: PLC0415
    return biggan.make_recipe(config, networks)


RECIPES = {"biggan": _biggan}


def make_recipe(config, networks=None) -> Recipe:
    """The recipe named by config.recipe, built for `config`."""
    name = config.recipe
    if name not in RECIPES:
        raise ValueError(f"config.recipe: unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name](config, networks)


__all__ = ["GANState", "Phase", "Recipe", "RECIPES", "make_recipe"]
