"""System mail is delivered by the delivery job: its tests use the delivery tests' loopback internet."""

from tests.smtp.delivery.conftest import (  # noqa: F401
    configure,
    ctx,
    dsettings,
    env,
    internet,
    relay_ca,
    world,
)
