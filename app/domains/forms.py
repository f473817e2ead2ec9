from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.services.dkim_keys import ALGORITHMS


class DomainForm(FlaskForm):
    name = StringField("Domain name", validators=[DataRequired(), Length(max=253)])
    owner = StringField("Owner's email (admins; empty = you)", validators=[Optional(), Length(max=320)])


class DeleteDomainForm(FlaskForm):
    confirm_name = StringField("Type the domain's name to confirm", validators=[Length(max=253)])


class VerifyForm(FlaskForm):
    force = BooleanField("Force verified (admin): accept mail even if the checks fail")


class DkimForm(FlaskForm):
    algorithm = SelectField("Algorithm", choices=[(a, {"rsa": "RSA-2048 (works everywhere)",
                                                       "ed25519": "Ed25519 (short; not every receiver checks it)"}[a])
                                                  for a in ALGORITHMS], default="rsa")


LABELS = {
    "dmarc_reject_policy": {"reject": "reject (550 at the end of DATA)",
                            "rewrite": "rewrite From to the alias and forward", "quarantine": "quarantine"},
    "dmarc_quarantine_policy": {"quarantine": "quarantine", "reject": "reject", "forward": "forward anyway"},
    "spam_action": {"forward": "forward with X-Spam headers", "quarantine": "quarantine", "reject": "reject"},
}


class PolicyForm(FlaskForm):
    """The domain's inbound policy; "" = the instance default (shown in its label)."""

    dmarc_reject_policy = SelectField("Mail failing DMARC from senders with p=reject")
    dmarc_quarantine_policy = SelectField("Mail failing DMARC from senders with p=quarantine, or failing SPF -all")
    spam_action = SelectField("Mail rspamd flags as spam")
    spam_threshold = StringField("Spam score threshold (empty = rspamd's own actions)",
                                 validators=[Optional(), Length(max=16)])

    def with_defaults(self, defaults: dict[str, str]) -> PolicyForm:
        """Fill the choices: "instance default (X)" first, then each value of the field."""
        for name, labels in LABELS.items():
            getattr(self, name).choices = [("", f"instance default ({defaults[name]})"), *labels.items()]
        return self
