from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from app.services.aliases import DESTINATIONS_HELP, MAX_NOTE


class AliasForm(FlaskForm):
    address = StringField("Alias", validators=[DataRequired(), Length(max=64)])
    destinations = TextAreaField("Forward to", validators=[DataRequired()], description=DESTINATIONS_HELP)
    note = StringField("Note", validators=[Length(max=MAX_NOTE)])
    enabled = BooleanField("Enabled", default=True)


class AliasEditForm(FlaskForm):
    destinations = TextAreaField("Forward to", validators=[DataRequired()], description=DESTINATIONS_HELP)
    note = StringField("Note", validators=[Length(max=MAX_NOTE)])
    enabled = BooleanField("Enabled")
