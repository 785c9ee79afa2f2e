from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from llmweb.accounts.models import Role
from llmweb.accounts.usernames import username_clean


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=False, max_length=254)

    class Meta(UserCreationForm.Meta):
        fields = ["username", "email"]

    def clean_username(self) -> str:
        # Invites go by username: refuse names that pass for another (accounts/usernames.py).
        return username_clean(super().clean_username())


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'CI script'.")
