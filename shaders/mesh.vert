#version 330 core
// Mesh vertices in world space; view and projection come from ops.camera.opengl_matrices.
layout(location = 0) in vec3 position;
layout(location = 1) in vec3 normal;
layout(location = 2) in vec3 vertex_color;
uniform mat4 view;
uniform mat4 projection;
out vec3 eye_position;
out vec3 eye_normal;
out vec3 albedo;
void main() {
    vec4 eye = view * vec4(position, 1.0);
    eye_position = eye.xyz;
    eye_normal = mat3(view) * normal;  // view is a rigid motion, so no inverse-transpose is needed
    albedo = vertex_color;
    gl_Position = projection * eye;
}
