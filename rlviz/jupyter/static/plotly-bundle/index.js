'use strict';

// The trace types the book draws (rlviz/figures: go.Scatter, go.Bar, go.Heatmap); scatter
// and every layout component (sliders, updatemenus, annotations, shapes, subplots, legend,
// hover, modebar, colorbar) come with plotly.js/lib/core. Keep PLOTLY_TRACES in
// rlviz/jupyter/sphinxext.py in step with this list.
var Plotly = require('plotly.js/lib/core');

Plotly.register([
    require('plotly.js/lib/bar'),
    require('plotly.js/lib/heatmap'),
]);

module.exports = Plotly;
