"""/api/: objects (router), traffic, users, schema and its offline Swagger UI."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from sitevis.portal.api import objects, users
from sitevis.portal.health.api import register as register_health
from sitevis.portal.rollouts.api import RolloutViewSet
from sitevis.portal.traffic import views as traffic

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("sites", objects.SiteViewSet, basename="site")
router.register("boxes", objects.BoxViewSet, basename="box")
router.register("interfaces", objects.InterfaceViewSet, basename="interface")
router.register("changes", objects.ChangeViewSet, basename="change")
router.register("users/tokens", users.TokenViewSet, basename="token")
router.register("rollouts", RolloutViewSet, basename="rollout")
register_health(router)   # /api/health/issues|webhooks|deliveries/

urlpatterns = [
    path("", include(router.urls)),
    path("users/me/", users.MeView.as_view(), name="me"),
    path("flows/top/", traffic.TopView.as_view(), name="flows-top"),
    path("series/traffic/", traffic.SeriesView.as_view(), name="series-traffic"),
    path("packets/", traffic.PacketsView.as_view(), name="packets"),
    path("status/", traffic.StatusView.as_view(), name="status"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
