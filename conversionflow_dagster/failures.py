"""How an error stops an asset: a Dagster failure that says what is wrong, retried only when a
second try could succeed."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from conversionflow_dagster.core.errors import ConversionflowError


def no_retry_failure(error: ConversionflowError) -> dg.Failure:
    """The error's message as the failure, with retries off: bad input, a model that cannot be
    fitted or a budget that cannot be split will not fix itself on a second try."""
    return dg.Failure(description=str(error), allow_retries=False)


@contextmanager
def retry_only_io_faults() -> Iterator[None]:
    """Around the body of an asset with a ``RetryPolicy``: only an I/O fault (``OSError``, a
    storage hiccup that may pass) reaches the policy. Anything else fails the same way on
    every attempt (a ``ConversionflowError`` about the input, the config or a contract; a
    ``ValueError`` from pandas or pydantic), so it stops the step at once instead of being
    retried with back-off."""
    try:
        yield
    except (OSError, dg.Failure):
        raise
    except ConversionflowError as error:
        raise no_retry_failure(error) from error
    except Exception as error:
        description = f"{type(error).__name__}: {error}"
        raise dg.Failure(description=description, allow_retries=False) from error
