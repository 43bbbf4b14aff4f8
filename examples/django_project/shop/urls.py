from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("items/<int:item_id>", views.item),
    path("fail", views.fail),
]
