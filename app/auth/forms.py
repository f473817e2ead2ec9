from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from app.services.tokens import EXPIRY_CHOICES
from app.services.users import MIN_PASSWORD

TOO_SHORT = f"the password needs at least {MIN_PASSWORD} characters"  # the service's own words


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class SignupForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=MIN_PASSWORD, message=TOO_SHORT)])
    confirm = PasswordField("Repeat password", validators=[DataRequired(), EqualTo("password", "the passwords differ")])


class ResetForm(FlaskForm):
    new_password = PasswordField("New password",
                                 validators=[DataRequired(), Length(min=MIN_PASSWORD, message=TOO_SHORT)])
    confirm = PasswordField("Repeat new password",
                            validators=[DataRequired(), EqualTo("new_password", "the passwords differ")])


class PasswordForm(ResetForm):
    old_password = PasswordField("Current password", validators=[DataRequired()])


class ForgotForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])
    expires = SelectField("Expires", default="", choices=[
        (str(days or ""), f"in {days} days" if days else "never") for days in EXPIRY_CHOICES])
    read_only = BooleanField("Read-only (GET and HEAD only)")


class CodeForm(FlaskForm):
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[DataRequired(), Length(max=32)])


class SetupCodeForm(FlaskForm):
    code = StringField("Code from your authenticator app", validators=[DataRequired(), Length(max=6)])


class DisableTwoFactorForm(CodeForm):
    password = PasswordField("Password", validators=[DataRequired()])
