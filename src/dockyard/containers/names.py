"""Container names: Docker's validation rule and Docker-style generated names (`adjective_surname`).

Names are kept without the leading '/' that the Docker API shows (`/brave_lovelace`); the API adds it.
The word lists are our own: adjectives, and surnames of scientists and engineers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

__all__ = [
    "ADJECTIVES",
    "SURNAMES",
    "InvalidName",
    "NameConflict",
    "generate_name",
    "random_name",
    "validate_name",
]

VALID_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VALID_NAME = re.compile(VALID_NAME_CHARS + "+")
# Docker tries six names (the last five with a digit) before falling back to the short ID.
ATTEMPTS = 6

ADJECTIVES = (
    "agile amber ample ardent artful astute audacious avid balmy bold brave breezy bright brisk buoyant "
    "calm candid capable careful cheerful civil clever cosmic crisp curious dapper daring dazzling deft "
    "devoted diligent dreamy dynamic eager earnest elated eloquent epic fabulous fearless fervent festive "
    "fluent focused frank friendly frosty gallant gentle gifted gleeful golden graceful grand hardy hearty "
    "honest humble jolly jovial keen kind lively lucid lucky merry mellow mighty modest nimble noble "
    "patient peaceful plucky polite prudent quick quiet radiant rapid ready resolute robust rustic serene "
    "sharp shiny sincere sleek smooth snappy sociable spry stellar steady sturdy sunny swift tender "
    "thoughtful tidy tireless tranquil trusty upbeat valiant vibrant vivid warm wise witty zealous zesty"
).split()

SURNAMES = (
    "agnesi alhazen ampere archimedes avogadro babbage bardeen bell bernoulli bohr boole boltzmann born "
    "brahe brattain cajal cannon carnot carson cavendish cerf chandrasekhar clausius cori coulomb crick "
    "curie dalton darwin davy dijkstra dirac doppler edison ehrlich einstein elion euclid euler faraday "
    "fermat fermi feynman fibonacci fleming foucault fourier franklin fresnel galileo galois galvani gauss "
    "germain gibbs goddard goodall gould hamilton hawking heaviside heisenberg helmholtz herschel hertz "
    "hilbert hippocrates hodgkin hollerith hooke hopper hubble huygens hypatia jackson jenner johnson "
    "joule kelvin kepler khorana kilby knuth kovalevskaya lamarr lamport laplace lavoisier leavitt "
    "leibniz lemaitre liskov lister lorentz lovelace lyell marconi maxwell mcclintock meitner mendel "
    "mendeleev michelson millikan minsky mirzakhani morse napier newton nobel noether noyce ohm oppenheimer "
    "pascal pasteur pauli pauling pavlov planck poincare ramanujan raman ritchie rontgen rutherford sagan "
    "salk sanger schrodinger shannon shockley somerville stallman stevin swanson tesla thompson thomson "
    "torvalds turing vaughan volta wallace watt wiles wilkes wu yalow yonath young zuse"
).split()


class InvalidName(ValueError):
    """A name Docker would refuse (the API answers 400)."""


class NameConflict(Exception):
    """A name already in use (the API answers 409 with this message)."""

    def __init__(self, name: str, container_id: str) -> None:
        self.name = name.lstrip("/")
        self.container_id = container_id
        super().__init__(
            f'Conflict. The container name "/{self.name}" is already in use by container "{container_id}". '
            "You have to remove (or rename) that container to be able to reuse that name."
        )


def validate_name(name: str) -> str:
    """Docker's rule `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$` (so at least two characters); returns the name
    without its leading '/'."""
    bare = name[1:] if name.startswith("/") else name
    if not _VALID_NAME.fullmatch(bare):
        raise InvalidName(f"Invalid container name ({name}), only {VALID_NAME_CHARS} are allowed")
    return bare


def random_name(attempt: int = 0, rng: random.Random | None = None) -> str:
    """`adjective_surname`; from the second attempt on, with a digit appended, as Docker does."""
    rng = rng or _rng
    name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
    if attempt > 0:
        name += str(rng.randrange(10))
    return name


def generate_name(
    taken: Callable[[str], bool], *, fallback: str | None = None, rng: random.Random | None = None
) -> str:
    """A free generated name: six tries as Docker makes, then `fallback` (Docker's is the short ID).
    RuntimeError when all of them are taken, which needs no fallback and a very crowded host."""
    for attempt in range(ATTEMPTS):
        name = random_name(attempt, rng)
        if not taken(name):
            return name
    if fallback is not None and not taken(fallback):
        return fallback
    raise RuntimeError("could not generate a free container name")


_rng = random.SystemRandom()  # names need no secrecy, but two daemons must not walk the same sequence
