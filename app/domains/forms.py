from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.services.dkim_keys import ALGORITHMS


class DomainForm(FlaskForm):
    name = StringField("Domain name", validators=[DataRequired(), Length(max=253)])
    owner = StringField("Owner's email (admins; empty = you)", validators=[Optional(), Length(max=320)])


class VerifyForm(FlaskForm):
    force = BooleanField("Force verified (admin): accept mail even if the checks fail")


class DkimForm(FlaskForm):
    algorithm = SelectField("Algorithm", choices=[(a, {"rsa": "RSA-2048 (works everywhere)",
                                                       "ed25519": "Ed25519 (short; not every receiver checks it)"}[a])
                                                  for a in ALGORITHMS], default="rsa")


class OptionsForm(FlaskForm):
    rewrite_from_for_dmarc_reject = BooleanField(
        "Rewrite From for senders whose DMARC policy is p=reject (Reply-To keeps the sender)")
