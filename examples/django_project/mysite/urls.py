from django.urls import path

from mysite import views

urlpatterns = [
    path("signup/<str:address>", views.signup),
    path("add", views.add_numbers),
    path("reports", views.start_report),
    path("tasks/<str:task_id>", views.status),
]
