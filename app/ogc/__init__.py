"""OGC API – Features (Parts 1, 2 and the basics of 3) at /ogc, for desktop GIS (QGIS, ArcGIS, GDAL).

The collections are the layer catalog's (layers/*.toml) plus one per partner data set the caller may
see one by one; every incident is read through the sharing function, exactly as the map and the API
read them. routes.py wires the endpoints; crs.py, cql.py, paging.py and html.py each do one thing.
"""
