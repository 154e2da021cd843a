"""The pages: overview (the home page), box, flow explorer and its CSV, packets."""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import path

from sitevis.portal.pages.views import box, flows, overview, packets

app_name = "pages"


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page without a <link rel=icon> (the login and
    API pages); a 404 there is a console error."""
    return HttpResponseRedirect(static("pages/favicon.png"))


urlpatterns = [
    path("", overview.overview, name="overview"),
    path("overview/top/<str:by>/", overview.top_panel, name="overview-top"),
    path("boxes/<str:site>/<str:name>/", box.box, name="box"),
    path("flows/", flows.flows, name="flows"),
    path("flows.csv", flows.flows_csv, name="flows-csv"),
    path("packets/", packets.packet_list, name="packets"),
    path("favicon.ico", favicon),
]
