from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired

from mailferry.models import ROLE_ADMIN, ROLE_OWNER

ROLE_CHOICES = [(ROLE_OWNER, "owner: sees only their own domains"), (ROLE_ADMIN, "admin: sees everything")]


class NewUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Initial password", validators=[DataRequired()])
    role = SelectField("Role", choices=ROLE_CHOICES, default=ROLE_OWNER)


class UserForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
    active = SelectField("Account", choices=[("1", "active"), ("0", "deactivated")])
