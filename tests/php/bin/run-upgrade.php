<?php
/**
 * One upgrade run in its own `php` process (what WP-cron or WP-CLI would run), so that a test
 * can kill it with SIGKILL at a journal step (MOLAM_FORM_FAULT). Prints the result as JSON.
 *
 * @package Molam_Form_Tests
 */

$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
require getenv( 'MOLAM_TEST_WP_DIR' ) . '/wp-load.php';
$verb = $argv[1] ?? 'upgrade';
if ( 'cron' === $verb ) {
	$result = molam_form_cron_run();
} elseif ( 'recover' === $verb ) {
	Molam_Form_Store::lock();
	$result = Molam_Form_Upgrade::recover();
	Molam_Form_Store::unlock();
} else {
	$result = Molam_Form_Upgrade::safe_upgrade( (string) Molam_Form_Upgrade::installed_version(), ! empty( $argv[2] ) );
}
echo wp_json_encode( $result ), "\n";
