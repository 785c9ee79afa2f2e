from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from llmweb.accounts.models import Role


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=False, max_length=254)

    class Meta(UserCreationForm.Meta):
        fields = ["username", "email"]


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'CI script'.")
