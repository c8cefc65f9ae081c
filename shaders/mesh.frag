#version 330 core
// A lit surface: a key light from above-left of the camera plus a little ambient, Blinn-Phong
// highlights; vertex colours or a neutral grey. Back faces are shaded as front faces (open meshes).
// `wire` draws the edges pass in a flat dark colour.
in vec3 eye_position;
in vec3 eye_normal;
in vec3 albedo;
uniform bool use_vertex_color;
uniform bool wire;
out vec4 color;
void main() {
    if (wire) { color = vec4(0.08, 0.08, 0.1, 1.0); return; }
    vec3 n = normalize(eye_normal);
    vec3 to_eye = normalize(-eye_position);
    if (dot(n, to_eye) < 0.0) n = -n;
    vec3 light = normalize(vec3(-0.3, 0.4, 0.866));
    vec3 base = use_vertex_color ? albedo : vec3(0.72);
    float diffuse = max(dot(n, light), 0.0);
    float specular = pow(max(dot(n, normalize(light + to_eye)), 0.0), 40.0);
    color = vec4(base * (0.2 + 0.8 * diffuse) + vec3(0.15 * specular), 1.0);
}
