"""/issues/: the list, one issue, acknowledge and resolve (POST)."""

from django.urls import path

from sitevis.portal.health import views

app_name = "health"

urlpatterns = [
    path("", views.issue_list, name="issues"),
    path("<int:pk>/", views.issue_detail, name="issue"),
    path("<int:pk>/acknowledge/", views.issue_acknowledge, name="acknowledge"),
    path("<int:pk>/resolve/", views.issue_resolve, name="resolve"),
]
