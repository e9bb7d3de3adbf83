"""Area resize and batch random crop (gan_zoo.ops.area_resize), torch mode='area' semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.ops.area_resize import random_crop, resize_area


def _line(values):  # [1, 1, W, 1] image with one row
    return jnp.asarray(values, jnp.float32)[None, None, :, None]


@pytest.mark.parametrize("values,size,expected", [
    # adaptive_avg_pool bins [floor(i*in/out), ceil((i+1)*in/out)), worked by hand:
    ([1.0, 2.0, 4.0], 2, [1.5, 3.0]),  # 3 -> 2: overlapping bins {0,1}, {1,2}
    ([1.0, 3.0, 5.0, 7.0], 2, [2.0, 6.0]),  # 4 -> 2: box mean
    ([1.0, 5.0], 4, [1.0, 1.0, 5.0, 5.0]),  # 2 -> 4: nearest
    ([1.0, 5.0], 3, [1.0, 3.0, 5.0]),  # 2 -> 3: the middle bin spans both
])
def test_area_resize_matches_hand_worked_bins(values, size, expected):
    x = jnp.broadcast_to(_line(values), (1, len(values), len(values), 1))  # same along rows
    y = resize_area(x, size)
    assert y.shape == (1, size, size, 1)
    np.testing.assert_allclose(y[0, :, :, 0], np.tile(expected, (size, 1)), rtol=1e-6)


def test_random_crop_is_one_window_for_the_batch():
    x = jnp.arange(2 * 10 * 10 * 1, dtype=jnp.float32).reshape(2, 10, 10, 1)
    y = np.asarray(random_crop(jax.random.PRNGKey(3), x, 4))
    top, left = divmod(int(y[0, 0, 0, 0]), 10)
    np.testing.assert_array_equal(y, np.asarray(x)[:, top:top + 4, left:left + 4])
    with pytest.raises(ValueError, match="larger than the image"):
        random_crop(jax.random.PRNGKey(0), x, 11)
