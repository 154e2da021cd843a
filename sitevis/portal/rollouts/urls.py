"""/rollouts/: history and launch, one rollout, its live part, cancel."""

from django.urls import path

from sitevis.portal.rollouts import views

app_name = "rollouts"

urlpatterns = [
    path("", views.rollout_list, name="list"),
    path("<int:pk>/", views.rollout_detail, name="detail"),
    path("<int:pk>/live/", views.rollout_live, name="live"),
    path("<int:pk>/cancel/", views.rollout_cancel, name="cancel"),
]
