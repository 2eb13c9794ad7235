from django.urls import path

from mysite import views

urlpatterns = [
    path("signup/<str:address>", views.signup),
    path("add", views.add_numbers),
]
