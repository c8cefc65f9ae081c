#version 330 core
// Camera-space unit normals (RGBA32F, OpenCV axes: x right, y down, z forward).
// style 0: normal map, n * 0.5 + 0.5 in OpenGL axes (y up, z towards the viewer).
// style 1: Lambert-shaded grey surface lit from `light` (camera space, towards the light).
// Same rule as renderers.colormaps.normals_to_rgb.
uniform sampler2D normals;
uniform int style;
uniform vec3 light;
in vec2 uv;
out vec4 color;
void main() {
    vec3 n = texture(normals, uv).xyz;
    vec3 rgb;
    if (style == 0) {
        rgb = clamp(vec3(n.x, -n.y, -n.z) * 0.5 + 0.5, 0.0, 1.0);
    } else {
        float lambert = max(dot(n, normalize(light)), 0.0);
        rgb = vec3(clamp(0.15 + 0.85 * lambert, 0.0, 1.0));
    }
    color = vec4(rgb, 1.0);
}
