"""(being written)"""

from rest_framework import viewsets
from rest_framework.views import APIView


class DatasetViewSet(viewsets.ViewSet):
    pass


class ModelViewSet(viewsets.ViewSet):
    pass


class JobViewSet(viewsets.ViewSet):
    pass


class PresetListApi(APIView):
    pass
