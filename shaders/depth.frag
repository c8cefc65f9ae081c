#version 330 core
// Depth (R32F) through a colormap: t = (depth - near) / (far - near), clamped; near maps to the
// colormap's high end unless inverted. Same rule as renderers.colormaps.colorize_depth.
uniform sampler2D depth;
uniform sampler2D lut;      // 256 x 1 RGBA8 colormap, index 0 = low end
uniform float near_depth;
uniform float far_depth;
uniform bool invert;
in vec2 uv;
out vec4 color;
void main() {
    float d = texture(depth, uv).r;
    float t = clamp((d - near_depth) / max(far_depth - near_depth, 1e-8), 0.0, 1.0);
    if (!invert) t = 1.0 - t;
    int index = int(floor(t * 255.0 + 0.5));
    color = vec4(texelFetch(lut, ivec2(index, 0), 0).rgb, 1.0);
}
